// Tests for ember::Ring: single-threaded semantics, a 3-producer contention fuzz, a forked
// consumer in another mapping of the same memfd, and the futex wait / timeout / wake paths.
#include "ring.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <deque>
#include <random>
#include <thread>
#include <vector>

namespace ember {
namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

/// A task-sized element that carries a checksum of itself, so a torn or stale slot shows.
struct Item {
  uint32_t producer;
  uint32_t seq;
  uint64_t payload[6];
  uint64_t check;
};
static_assert(std::is_trivially_copyable_v<Item>);

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t checksum(const Item& it) {
  uint64_t h = mix((uint64_t{it.producer} << 32) | it.seq);
  for (uint64_t p : it.payload) h = mix(h ^ p);
  return h;
}

Item make_item(uint32_t producer, uint32_t seq) {
  Item it{};
  it.producer = producer;
  it.seq = seq;
  for (int k = 0; k < 6; ++k) it.payload[k] = mix((uint64_t{seq} << 8) + producer * 7 + k);
  it.check = checksum(it);
  return it;
}

bool intact(const Item& it) { return it.check == checksum(it); }

/// A MAP_SHARED mapping of a fresh memfd: the kind of memory the runtime's segment is.
class SharedRegion {
 public:
  explicit SharedRegion(std::size_t bytes) : bytes_(bytes) {
    fd_ = memfd_create("ember-test-ring", MFD_CLOEXEC);
    if (fd_ < 0 || ftruncate(fd_, static_cast<off_t>(bytes)) != 0) std::abort();
    addr_ = map();
  }
  ~SharedRegion() {
    munmap(addr_, bytes_);
    close(fd_);
  }
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;

  /// A second, independent mapping of the same memory (at another address); caller unmaps.
  void* map() const {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) std::abort();
    return p;
  }
  void* addr() const { return addr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t bytes_;
  int fd_ = -1;
  void* addr_ = nullptr;
};

template <typename R>
R* make_ring(SharedRegion& region, uint32_t first_position = 0) {
  EXPECT_GE(region.bytes(), sizeof(R));
  return R::create_at(region.addr(), first_position);
}

// ---------------------------------------------------------------------------------------------
// Tier 1: one thread.

TEST(RingSingleThread, PushPopInOrder) {
  using R = Ring<uint64_t, 8>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  EXPECT_TRUE(ring->empty());
  EXPECT_EQ(R::capacity(), 8u);
  for (uint64_t v = 1; v <= 5; ++v) ASSERT_TRUE(ring->try_push(v * 10));
  EXPECT_EQ(ring->size(), 5u);
  for (uint64_t v = 1; v <= 5; ++v) {
    uint64_t out = 0;
    ASSERT_TRUE(ring->try_pop(out));
    EXPECT_EQ(out, v * 10);
  }
  uint64_t out = 0;
  EXPECT_FALSE(ring->try_pop(out));
  EXPECT_TRUE(ring->empty());
}

TEST(RingSingleThread, FullAndEmptyBoundaries) {
  using R = Ring<uint32_t, 8>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  uint32_t out = 0;
  EXPECT_FALSE(ring->try_pop(out));
  for (uint32_t v = 0; v < 8; ++v) ASSERT_TRUE(ring->try_push(v));
  EXPECT_EQ(ring->size(), 8u);
  EXPECT_FALSE(ring->try_push(99)) << "a full ring must refuse";
  ASSERT_TRUE(ring->try_pop(out));
  EXPECT_EQ(out, 0u);
  EXPECT_TRUE(ring->try_push(8)) << "one pop frees exactly one slot";
  EXPECT_FALSE(ring->try_push(99));
  for (uint32_t v = 1; v <= 8; ++v) {
    ASSERT_TRUE(ring->try_pop(out));
    EXPECT_EQ(out, v);
  }
  EXPECT_FALSE(ring->try_pop(out));
  EXPECT_EQ(ring->size(), 0u);
}

// Counters starting just below 2^31 and 2^32 check that positions compare across the wrap.
TEST(RingSingleThread, WrapsAroundManyTimes) {
  using R = Ring<uint32_t, 4>;
  for (uint32_t first : {0u, 0x7ffffff0u, 0xfffffff0u}) {
    SCOPED_TRACE(first);
    SharedRegion region(sizeof(R));
    R* ring = make_ring<R>(region, first);
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 100'000; ++round) {
      const int n = 1 + round % 4;
      for (int k = 0; k < n; ++k) ASSERT_TRUE(ring->try_push(next_in++));
      if (n == 4) {
        ASSERT_FALSE(ring->try_push(0));
      }
      for (int k = 0; k < n; ++k) {
        uint32_t out = 0;
        ASSERT_TRUE(ring->try_pop(out));
        ASSERT_EQ(out, next_out++);
      }
      uint32_t out = 0;
      ASSERT_FALSE(ring->try_pop(out));
    }
  }
}

// Random pushes and pops checked against a std::deque model, with self-checking elements.
TEST(RingSingleThread, MatchesDequeModelWithChecksummedItems) {
  using R = Ring<Item, 16>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region, 0xffffff00u);
  std::deque<Item> model;
  std::mt19937 rng(42);
  uint32_t seq = 0;
  for (int step = 0; step < 200'000; ++step) {
    if (rng() % 2 == 0) {
      const Item it = make_item(1, seq);
      const bool pushed = ring->try_push(it);
      ASSERT_EQ(pushed, model.size() < R::capacity());
      if (pushed) {
        model.push_back(it);
        ++seq;
      }
    } else {
      Item out{};
      const bool popped = ring->try_pop(out);
      ASSERT_EQ(popped, !model.empty());
      if (popped) {
        ASSERT_TRUE(intact(out));
        ASSERT_EQ(out.seq, model.front().seq);
        model.pop_front();
      }
    }
    ASSERT_EQ(ring->size(), model.size());
  }
}

TEST(RingSingleThread, AttachSeesTheSameRingAtAnotherAddress) {
  using R = Ring<uint64_t, 8>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  void* other = region.map();
  ASSERT_NE(other, region.addr());
  R* view = R::attach(other);
  ASSERT_NE(view, nullptr);
  ASSERT_TRUE(ring->try_push(7));
  uint64_t out = 0;
  ASSERT_TRUE(view->try_pop(out));
  EXPECT_EQ(out, 7u);
  EXPECT_TRUE(ring->empty());
  EXPECT_EQ((Ring<uint64_t, 16>::attach(other)), nullptr) << "wrong capacity must not attach";
  EXPECT_EQ((Ring<uint32_t, 8>::attach(other)), nullptr) << "wrong slot type must not attach";
  munmap(other, region.bytes());
}

// ---------------------------------------------------------------------------------------------
// Tier 2: contention fuzz. Three producers and one consumer start on one flag; the consumer
// checks every item's checksum and each producer's FIFO order, then the total.

constexpr uint32_t kFuzzItems = 1'000'000;

void run_fuzz(bool blocking) {
  using R = Ring<Item, 64>;  // small, so producers often find it full
  constexpr uint32_t kProducers = 3;
  constexpr int kStallMs = 5'000;  // a side that makes no progress this long reports a stall
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  std::atomic<bool> go{false};
  std::atomic<bool> stalled{false};  // set by a stalled side; makes every other side give up

  auto produce = [&](uint32_t id, uint32_t count) {
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    for (uint32_t s = 0; s < count && !stalled.load(std::memory_order_relaxed); ++s) {
      const Item it = make_item(id, s);
      if (blocking) {
        if (!ring->push_wait(it, kStallMs)) stalled.store(true);
        continue;
      }
      const auto since = Clock::now();
      for (uint32_t spins = 1; !ring->try_push(it); ++spins) {
        if (spins % 1024 == 0 && (stalled.load() || ms_since(since) > kStallMs)) {
          stalled.store(true);
          return;
        }
        std::this_thread::yield();
      }
    }
  };
  std::vector<std::thread> threads;
  std::vector<uint32_t> counts;
  for (uint32_t id = 0; id < kProducers; ++id) {
    counts.push_back(kFuzzItems / kProducers + (id < kFuzzItems % kProducers ? 1 : 0));
    threads.emplace_back(produce, id, counts.back());
  }

  std::vector<uint32_t> next_seq(kProducers, 0);
  uint64_t received = 0, sum = 0, expected_sum = 0, torn = 0, out_of_order = 0;
  threads.emplace_back([&] {  // the consumer
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    for (; received < kFuzzItems; ++received) {
      Item it{};
      if (blocking) {
        if (!ring->pop_wait(it, kStallMs)) break;
      } else {
        const auto since = Clock::now();
        bool got = true;
        for (uint32_t spins = 1; !ring->try_pop(it); ++spins) {
          if (spins % 1024 == 0 && ms_since(since) > kStallMs) {
            got = false;
            break;
          }
          std::this_thread::yield();
        }
        if (!got) break;
      }
      if (!intact(it) || it.producer >= kProducers) {
        ++torn;
        continue;
      }
      if (it.seq != next_seq[it.producer]) ++out_of_order;
      next_seq[it.producer] = it.seq + 1;
      sum += it.payload[0] + it.seq;
    }
    if (received < kFuzzItems) stalled.store(true);
  });

  go.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();

  ASSERT_FALSE(stalled.load()) << "stalled after " << received << " of " << kFuzzItems;
  for (uint32_t id = 0; id < kProducers; ++id) {
    EXPECT_EQ(next_seq[id], counts[id]) << "producer " << id;
    for (uint32_t s = 0; s < counts[id]; ++s) {
      const Item it = make_item(id, s);
      expected_sum += it.payload[0] + it.seq;
    }
  }
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(out_of_order, 0u);
  EXPECT_EQ(sum, expected_sum);
  Item extra{};
  EXPECT_FALSE(ring->try_pop(extra));
}

TEST(RingContention, ThreeProducersOneConsumerSpinning) { run_fuzz(/*blocking=*/false); }

TEST(RingContention, ThreeProducersOneConsumerBlocking) { run_fuzz(/*blocking=*/true); }

// ---------------------------------------------------------------------------------------------
// Blocking: timeouts and wakes (threads of one process).

int64_t thread_cpu_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000 + ts.tv_nsec / 1'000'000;
}

TEST(RingBlocking, PopWaitTimesOutAsleep) {
  using R = Ring<uint64_t, 8>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  uint64_t out = 0;
  auto start = Clock::now();
  EXPECT_FALSE(ring->pop_wait(out, 0));
  EXPECT_LT(ms_since(start), 20);
  ring->wake_all();  // moves the futex word off 0, so a wait on a stale value would spin
  EXPECT_FALSE(ring->pop_wait(out, 1'000));
  start = Clock::now();
  const int64_t cpu_before = thread_cpu_ms();
  EXPECT_FALSE(ring->pop_wait(out, 100));
  const int64_t waited = ms_since(start);
  EXPECT_GE(waited, 100);
  EXPECT_LT(waited, 400);
  EXPECT_LT(thread_cpu_ms() - cpu_before, 20) << "the wait must sleep, not spin";
}

// Request/reply between two threads with a jittered pause before each request, so requests
// land at every phase of the echo thread's spin-then-sleep transition (its spin is 5 us). A
// lost wakeup shows as a pop_wait that runs into its (generous) timeout. On x86 this catches a
// Dekker pair weakened to release/acquire within a few thousand rounds.
TEST(RingBlocking, PingPongNeverLosesAWakeup) {
  using R = Ring<uint64_t, 8>;
  constexpr uint64_t kRounds = 20'000;
  constexpr uint64_t kStop = ~uint64_t{0};
  SharedRegion requests_region(sizeof(R)), replies_region(sizeof(R));
  R* requests = make_ring<R>(requests_region);
  R* replies = make_ring<R>(replies_region);
  std::atomic<uint64_t> echoed{0};
  std::thread echo([&] {
    for (;;) {
      uint64_t v = 0;
      if (!requests->pop_wait(v, 2'000) || v == kStop) return;
      if (!replies->push_wait(v, 2'000)) return;
      echoed.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::mt19937 rng(7);
  uint64_t round = 0;
  for (; round < kRounds; ++round) {
    const auto pause = std::chrono::nanoseconds(rng() % 12'000);  // around the 5 us spin
    const auto until = Clock::now() + pause;
    while (Clock::now() < until) {
    }
    if (!requests->push_wait(round, 2'000)) break;
    uint64_t v = 0;  // spin for the reply, so the next request's phase is just the pause
    const auto since = Clock::now();
    while (!replies->try_pop(v) && ms_since(since) < 2'000) {
    }
    if (v != round) break;
  }
  EXPECT_TRUE(requests->push_wait(kStop, 2'000));
  echo.join();
  EXPECT_EQ(round, kRounds) << "a wakeup was lost (or a reply was wrong) at round " << round;
  EXPECT_EQ(echoed.load(), round);
  std::printf("[          ] %llu round trips, %u futex wakes\n",
              static_cast<unsigned long long>(round), requests->wake_count());
}

TEST(RingBlocking, PopWaitIsWokenByPush) {
  using R = Ring<uint64_t, 8>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  uint64_t out = 0;
  bool got = false;
  int64_t waited = 0;
  std::thread waiter([&] {
    const auto start = Clock::now();
    got = ring->pop_wait(out, 5'000);
    waited = ms_since(start);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it fall asleep
  ASSERT_TRUE(ring->try_push(42));
  waiter.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(out, 42u);
  EXPECT_LT(waited, 2'000);
  EXPECT_GE(ring->wake_count(), 1u) << "the push should have taken the futex wake path";
}

TEST(RingBlocking, WakeAllUnblocksWaiter) {
  using R = Ring<uint64_t, 8>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  bool got = true;
  int64_t waited = 0;
  std::thread waiter([&] {
    uint64_t out = 0;
    const auto start = Clock::now();
    got = ring->pop_wait(out, 10'000);
    waited = ms_since(start);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ring->wake_all();
  waiter.join();
  EXPECT_FALSE(got);
  EXPECT_GE(waited, 40);
  EXPECT_LT(waited, 2'000);
}

// A wake_all() that comes before the consumer waits is not lost (the shutdown race), is
// reported only once the ring is empty, and only once.
TEST(RingBlocking, EarlyWakeAllIsReportedOnceWhenEmpty) {
  using R = Ring<uint64_t, 8>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  ASSERT_TRUE(ring->try_push(1));
  ring->wake_all();
  uint64_t out = 0;
  EXPECT_TRUE(ring->pop_wait(out, 1'000)) << "items come before the wake";
  EXPECT_EQ(out, 1u);
  auto start = Clock::now();
  EXPECT_FALSE(ring->pop_wait(out, 5'000));
  EXPECT_LT(ms_since(start), 1'000);
  start = Clock::now();
  EXPECT_FALSE(ring->pop_wait(out, 50));
  EXPECT_GE(ms_since(start), 50) << "the kick must be consumed by the first report";
}

TEST(RingBlocking, PushWaitTimesOutWhenFullAndResumesWhenDrained) {
  using R = Ring<uint64_t, 4>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  for (uint64_t v = 0; v < 4; ++v) ASSERT_TRUE(ring->try_push(v));
  auto start = Clock::now();
  EXPECT_FALSE(ring->push_wait(99, 50));
  EXPECT_GE(ms_since(start), 50);
  std::thread drainer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    uint64_t out = 0;
    EXPECT_TRUE(ring->try_pop(out));
    EXPECT_EQ(out, 0u);
  });
  start = Clock::now();
  EXPECT_TRUE(ring->push_wait(4, 5'000));
  EXPECT_LT(ms_since(start), 2'000);
  drainer.join();
  for (uint64_t v = 1; v <= 4; ++v) {
    uint64_t out = 0;
    ASSERT_TRUE(ring->try_pop(out));
    EXPECT_EQ(out, v);
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-process: the consumer is a forked child that maps the memfd again (at another address)
// and blocks in pop_wait; the parent pushes with pauses longer than the consumer's spin, so
// most items go through the futex sleep / FUTEX_WAKE path between processes.

/// Forks; the child runs `body` and _exits with its return value (gtest macros do not work
/// in the child, so it reports through its exit code). Returns the child's pid.
template <typename Body>
pid_t fork_child(Body body) {
  const pid_t pid = fork();
  if (pid == 0) _exit(body());
  return pid;
}

/// Waits for `pid` (at most `timeout_ms`, then kills it) and returns its exit code, or -1.
int reap(pid_t pid, int timeout_ms) {
  const auto start = Clock::now();
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (ms_since(start) > timeout_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(RingCrossProcess, ForkedConsumerGetsEverythingInOrder) {
  using R = Ring<Item, 64>;
  constexpr uint32_t kTrickle = 300;  // one item at a time, consumer asleep before each
  constexpr uint32_t kBursts = 40;    // then bursts of a few ring-fulls (producer waits on full)
  constexpr uint32_t kBurst = 500;
  constexpr uint32_t kTotal = kTrickle + kBursts * kBurst;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);

  const pid_t child = fork_child([&]() -> int {
    void* mine = region.map();  // the parent's mapping is still here, so this one differs
    if (mine == region.addr()) return 10;
    R* r = R::attach(mine);
    if (r == nullptr) return 11;
    for (uint32_t n = 0; n < kTotal; ++n) {
      Item it{};
      if (!r->pop_wait(it, 5'000)) return 12;
      if (!intact(it)) return 13;
      if (it.producer != 7 || it.seq != n) return 14;
    }
    Item extra{};
    return r->try_pop(extra) ? 15 : 0;
  });
  ASSERT_GT(child, 0);

  const auto start = Clock::now();
  uint32_t seq = 0;
  bool pushed_all = true;
  for (; seq < kTrickle && pushed_all; ++seq) {
    pushed_all = ring->push_wait(make_item(7, seq), 5'000);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  for (uint32_t b = 0; b < kBursts && pushed_all; ++b) {
    for (uint32_t k = 0; k < kBurst && pushed_all; ++k, ++seq) {
      pushed_all = ring->push_wait(make_item(7, seq), 5'000);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(pushed_all) << "stalled at item " << seq;
  EXPECT_EQ(reap(child, 10'000), 0) << "child exit codes: 12 timeout, 13 torn, 14 order";
  const uint32_t wakes = ring->wake_count();
  EXPECT_GE(wakes, kTrickle / 2) << "the trickle phase should mostly go through FUTEX_WAKE";
  std::printf("[          ] %u items across processes in %lld ms, %u futex wakes\n", kTotal,
              static_cast<long long>(ms_since(start)), wakes);
}

TEST(RingCrossProcess, WakeAllReachesAnotherProcess) {
  using R = Ring<uint64_t, 8>;
  SharedRegion region(sizeof(R));
  R* ring = make_ring<R>(region);
  const pid_t child = fork_child([&]() -> int {
    R* r = R::attach(region.map());
    if (r == nullptr) return 11;
    uint64_t out = 0;
    const auto start = Clock::now();
    if (r->pop_wait(out, 10'000)) return 12;
    return ms_since(start) < 3'000 ? 0 : 13;
  });
  ASSERT_GT(child, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ring->wake_all();
  EXPECT_EQ(reap(child, 10'000), 0) << "child exit codes: 12 got an item, 13 not woken";
}

}  // namespace
}  // namespace ember
