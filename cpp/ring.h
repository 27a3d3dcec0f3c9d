// Ring: a bounded lock-free multi-producer / single-consumer ring that lives in shared memory,
// with a futex so that an idle consumer sleeps. It is each worker's inbound task ring (and,
// with a single producer, serves as its outbound ring too).
//
// Protocol (Vyukov's bounded queue, specialised to one consumer)
// ---------------------------------------------------------------
// Positions are free-running uint32_t counters; position p lives in slot p % Capacity.
// Every slot carries a sequence number `seq` that says whose turn the slot is:
//
//   seq == p              the slot is free for the producer of position p
//   seq == p + 1          position p is published: the consumer may read it
//   seq == p + Capacity   the consumer has read p: free for the producer of p + Capacity
//
//   producer (any thread of the driver)         consumer (one thread of a worker process)
//   1. pos = tail; CAS tail: pos -> pos + 1     1. pos = head (its own index, no CAS)
//      only if slot[pos].seq == pos             2. wait until slot[pos].seq == pos + 1
//   2. write slot[pos].value                    3. read slot[pos].value; head = pos + 1
//   3. slot[pos].seq = pos + 1   (publish)      4. slot[pos].seq = pos + Capacity  (release)
//   4. if the consumer is flagged asleep: bump the futex word and FUTEX_WAKE it
//
// Invariants
//   I1  head <= tail (mod 2^32) and tail - head <= Capacity.
//   I2  A slot's value is written only by the one producer whose CAS claimed its position, and
//       only between that CAS and its publish; the consumer reads it only after the publish
//       (acquire) and hands it back only after the read (release). So no side ever sees a
//       half-written slot, and T needs no atomicity of its own.
//   I3  Each side reads only the slot it is about to use, which the other side wrote last: no
//       index of the other side is read on the hot path (size() is the exception, and says so).
//   I4  Positions differ by at most Capacity <= 2^30, so `int32_t(seq - pos)` orders them across
//       the 2^32 wrap. (ABA: a producer would have to stall between reading tail and its CAS
//       while 2^32 other pushes go by.)
//
// Sleeping (futex)
//   The consumer spins for kSpinNanos, then sets `sleeping`, re-checks its next slot and only
//   then calls FUTEX_WAIT on `futex_word` with the value it read *before* setting the flag. A
//   producer publishes, then looks at `sleeping`; only if it is set does it bump `futex_word`
//   and call FUTEX_WAKE, so a busy consumer costs producers no syscall. See notify_consumer()
//   for why this cannot lose a wakeup. The futex is shared (no FUTEX_PRIVATE_FLAG): the word
//   is keyed by the backing page, so processes that map the segment at different addresses
//   meet on it.
//
// Shared memory
//   Everything is inline (no pointers), T is trivially copyable, and std::atomic<uint32_t> is
//   asserted always-lock-free, hence address-free: the ring can be mapped at different
//   addresses in different processes. One process calls create_at(); others call attach().
//
// Failure of a member
//   A ring belongs to one process pair (the driver's threads push, one worker pops), and all of
//   its state is inside it, so a crash wedges at most this ring:
//   - a producer that dies between its CAS and its publish leaves its position claimed and never
//     published: the consumer stops there (everything behind it waits) and producers see the
//     ring fill up, until the owner re-creates the ring. For a worker's inbound ring the
//     producers are the driver's threads, so such a death is the driver's own.
//   - a consumer that dies mid-pop has already advanced head (step 3 before step 4), so the item
//     it copied counts as taken by it: it is that worker's running task, retried by supervision.
//     After the worker is reaped and producers no longer route to the ring, the supervisor may
//     become the consumer and drain what is left with try_pop(); then create_at() again.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

#include "futex.h"

namespace ember {

/// Cache line size assumed for layout (x86-64 and most aarch64 parts).
inline constexpr std::size_t kCacheLine = 64;

namespace detail {

static_assert(std::atomic<uint32_t>::is_always_lock_free,
              "shared-memory rings need address-free (lock-free) 32-bit atomics");
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) &&
                  alignof(std::atomic<uint32_t>) == alignof(uint32_t),
              "the futex syscall needs std::atomic<uint32_t> to be a plain 32-bit word");

/// Tells the CPU we are spinning (frees the sibling hyper-thread, saves power).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// The part of a Ring that does not depend on T: indices, the futex word and an identity
/// header. Each group that one side writes sits on its own cache line.
struct RingControl {
  // Identity line: written once by create_at(), then only read (attach()).
  uint32_t magic;
  uint32_t capacity;
  uint32_t slot_size;
  // Producer line: every producer CASes tail; the consumer never touches it.
  alignas(kCacheLine) std::atomic<uint32_t> tail;
  // Consumer line: only the consumer writes head; others read it only in size().
  alignas(kCacheLine) std::atomic<uint32_t> head;
  // Wake line: `sleeping` is read by every push, so it must not share a line with head, which
  // the consumer writes on every pop.
  alignas(kCacheLine) std::atomic<uint32_t> futex_word;  // bumped before each FUTEX_WAKE
  std::atomic<uint32_t> sleeping;                        // 1: the consumer is (about to be) asleep
  std::atomic<uint32_t> kick;                            // 1: a wake_all() not yet reported
};

static_assert(std::is_standard_layout_v<RingControl>, "offsetof below needs standard layout");
static_assert(offsetof(RingControl, tail) % kCacheLine == 0 &&
              offsetof(RingControl, tail) > offsetof(RingControl, slot_size),
              "producers' CAS must not invalidate the identity line");
static_assert(offsetof(RingControl, head) - offsetof(RingControl, tail) >= kCacheLine,
              "producer and consumer indices must not share a cache line");
static_assert(offsetof(RingControl, futex_word) - offsetof(RingControl, head) >= kCacheLine,
              "the sleeper flag must not share a cache line with the consumer index");
static_assert(offsetof(RingControl, futex_word) % kCacheLine == 0);
static_assert(sizeof(RingControl) % kCacheLine == 0);

inline constexpr uint32_t kRingMagic = 0x676e6952;  // "Ring"

}  // namespace detail

/// A bounded MPSC ring of trivially copyable T, placed in (shared) memory with create_at().
/// try_push / push_wait may be called from any number of threads of one process; try_pop /
/// pop_wait from one thread (of any process) at a time; the rest from anywhere.
template <typename T, uint32_t Capacity>
class Ring {
  static_assert(std::is_trivially_copyable_v<T>, "ring slots are copied bytewise across processes");
  static_assert(Capacity >= 2 && (Capacity & (Capacity - 1)) == 0,
                "Capacity must be a power of two >= 2 (with 1, 'published' and 'free' coincide)");
  static_assert(Capacity <= (1u << 30), "positions are compared as int32_t differences (I4)");

 public:
  using value_type = T;

  /// Spin this long in pop_wait() / push_wait() before sleeping.
  static constexpr int64_t kSpinNanos = 5'000;
  /// push_wait() naps this long between tries once the ring has stayed full past the spin.
  static constexpr int64_t kPushNapNanos = 50'000;

  /// Constructs an empty ring at `mem` (kCacheLine-aligned, sizeof(Ring) bytes) and returns it.
  /// `first_position` starts the counters elsewhere than 0 (tests use it to cross 2^32).
  static Ring* create_at(void* mem, uint32_t first_position = 0) noexcept {
    static_assert(alignof(Ring) == kCacheLine && sizeof(Ring) % kCacheLine == 0,
                  "slots start on their own cache line, after the control block");
    assert(reinterpret_cast<std::uintptr_t>(mem) % alignof(Ring) == 0);
    return new (mem) Ring(first_position);
  }

  /// The ring that create_at() built at `mem`, possibly mapped at another address in another
  /// process; nullptr if `mem` holds no Ring of this T and Capacity.
  static Ring* attach(void* mem) noexcept {
    Ring* ring = std::launder(reinterpret_cast<Ring*>(mem));
    const detail::RingControl& c = ring->ctl_;
    if (c.magic != detail::kRingMagic || c.capacity != Capacity || c.slot_size != sizeof(Slot)) {
      return nullptr;
    }
    return ring;
  }

  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  /// Appends `value` unless the ring is (or just was) full; wakes the consumer if it sleeps.
  /// Any thread of the producing process.
  [[nodiscard]] bool try_push(const T& value) noexcept {
    // relaxed: only a guess of the position to claim; the CAS below validates it.
    uint32_t pos = ctl_.tail.load(std::memory_order_relaxed);
    Slot* slot;
    for (;;) {
      slot = &slots_[pos & kMask];
      // acquire: pairs with the consumer's release in try_pop, so its read of the slot's old
      // value happens before our write of the new one.
      const uint32_t seq = slot->seq.load(std::memory_order_acquire);
      const int32_t diff = static_cast<int32_t>(seq - pos);
      // Cases:
      //  (1) diff == 0: the slot is free for position pos; claim pos by moving tail past it.
      //      (1a) the CAS succeeds: pos and its slot are ours.
      //      (1b) the CAS fails: another producer claimed pos first; the CAS reloaded tail
      //           into pos, so retry with it. (compare_exchange_weak may also fail spuriously,
      //           leaving pos unchanged: retrying is right then too.)
      //  (2) diff < 0: the slot still holds position pos - Capacity, not yet popped: full.
      //  (3) diff > 0: our pos is stale: another producer claimed and maybe published it
      //      (and the consumer maybe popped it) since we read tail. Read tail again.
      if (diff == 0) {
        // relaxed (both orders): claiming publishes nothing; the slot was ordered by the
        // acquire above and the value is published by the release of seq below.
        if (ctl_.tail.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed,
                                            std::memory_order_relaxed)) {
          break;  // case (1a)
        }
        // case (1b): pos now holds the current tail.
      } else if (diff < 0) {
        return false;  // case (2)
      } else {
        pos = ctl_.tail.load(std::memory_order_relaxed);  // case (3); relaxed: a guess, as above
      }
    }
    slot->value = value;
    // seq_cst: release publishes `value` to the consumer's acquire; seq_cst because this store
    // and the load of `sleeping` in notify_consumer() are the producer half of a Dekker pair.
    slot->seq.store(pos + 1, std::memory_order_seq_cst);
    notify_consumer();
    return true;
  }

  /// Like try_push, but if the ring is full spins, then naps, until there is room or
  /// `timeout_ms` passes (< 0: no limit). Returns false on timeout.
  [[nodiscard]] bool push_wait(const T& value, int timeout_ms) noexcept {
    if (try_push(value)) return true;
    const Clock::time_point start = Clock::now();
    for (;;) {
      const int64_t waited = nanos_since(start);
      if (timeout_ms >= 0 && waited >= int64_t{timeout_ms} * 1'000'000) return false;
      if (waited < kSpinNanos) {
        detail::cpu_relax();
      } else {
        struct timespec nap = {0, static_cast<long>(kPushNapNanos)};
        nanosleep(&nap, nullptr);
      }
      if (try_push(value)) return true;
    }
  }

  /// Removes the oldest item into `out` unless none is published yet. The consumer only.
  [[nodiscard]] bool try_pop(T& out) noexcept {
    // relaxed: head is our own index; no other thread writes it.
    const uint32_t pos = ctl_.head.load(std::memory_order_relaxed);
    Slot& slot = slots_[pos & kMask];
    // acquire: pairs with the producer's publish, so its write of `value` is visible.
    if (slot.seq.load(std::memory_order_acquire) != pos + 1) {
      return false;  // empty, or the next position is claimed but not yet published
    }
    out = slot.value;
    // release: only for size()/empty() readers: what head counts as popped was published.
    // Stored before handing the slot back so a consumer death mid-pop loses no other item.
    ctl_.head.store(pos + 1, std::memory_order_release);
    // release: our read of `value` happens before the next producer's overwrite (its acquire).
    slot.seq.store(pos + Capacity, std::memory_order_release);
    return true;
  }

  /// Pops into `out`, waiting up to `timeout_ms` (< 0: no limit; 0: just try) for an item:
  /// spins for `spin_ns`, then sleeps on the futex. Returns false on timeout, and early if a
  /// wake_all() is pending while the ring is empty. The consumer only.
  [[nodiscard]] bool pop_wait(T& out, int timeout_ms, int64_t spin_ns = kSpinNanos) noexcept {
    if (try_pop(out)) return true;
    if (timeout_ms == 0) return false;
    const Clock::time_point start = Clock::now();
    const int64_t limit_ns = timeout_ms < 0 ? -1 : int64_t{timeout_ms} * 1'000'000;
    for (uint32_t i = 1;; ++i) {  // spin phase: cheap while producers are active
      if (try_pop(out)) return true;
      detail::cpu_relax();
      if ((i & 15) == 0 && nanos_since(start) >= spin_ns) break;
    }
    for (;;) {  // sleep phase
      if (try_pop(out)) return true;
      // acquire: if this read sees wake_all()'s bump, the kick check below sees its kick.
      // Read before `sleeping` is set, so any wake that a producer sends after seeing our flag
      // changes the word from this value and FUTEX_WAIT cannot sleep through it.
      const uint32_t word = ctl_.futex_word.load(std::memory_order_acquire);
      // relaxed: the kick's visibility is carried by futex_word (read just above).
      if (ctl_.kick.load(std::memory_order_relaxed) != 0 &&
          ctl_.kick.exchange(0, std::memory_order_relaxed) != 0) {
        return false;
      }
      // seq_cst: consumer half of the Dekker pair with try_push (see notify_consumer()).
      ctl_.sleeping.store(1, std::memory_order_seq_cst);
      if (next_is_published_seq_cst()) {
        // relaxed: a stale flag costs a producer one needless wake, nothing more.
        ctl_.sleeping.store(0, std::memory_order_relaxed);
        continue;  // a producer published in between: take it at the top of the loop
      }
      int64_t remaining = -1;
      if (limit_ns >= 0) {
        remaining = limit_ns - nanos_since(start);
        if (remaining <= 0) {
          ctl_.sleeping.store(0, std::memory_order_relaxed);  // relaxed: as above
          return try_pop(out);
        }
      }
      futex_wait(&ctl_.futex_word, word, remaining);
      // relaxed: as above. Every sleep is preceded by a fresh seq_cst set-and-recheck.
      ctl_.sleeping.store(0, std::memory_order_relaxed);
    }
  }

  /// Wakes a consumer blocked in pop_wait(); its current or next pop_wait() that finds the
  /// ring empty returns false at once instead of sleeping (used at shutdown: set your stop
  /// flag, then call this). Any thread, any process.
  void wake_all() noexcept {
    // relaxed: published by the release increment of futex_word just below.
    ctl_.kick.store(1, std::memory_order_relaxed);
    // release: a consumer that reads the new word (acquire) also sees the kick.
    ctl_.futex_word.fetch_add(1, std::memory_order_release);
    futex_wake(&ctl_.futex_word, INT_MAX);
  }

  /// Number of items pushed but not yet popped, including claimed but unpublished ones.
  /// Approximate unless both sides are quiescent.
  std::size_t size() const noexcept {
    // acquire: pairs with the consumer's release of head, so the tail read after it is at
    // least the tail at which those items were pushed (tail - head does not underflow).
    const uint32_t head = ctl_.head.load(std::memory_order_acquire);
    // relaxed: a snapshot; the difference is clamped anyway.
    const uint32_t tail = ctl_.tail.load(std::memory_order_relaxed);
    const int32_t n = static_cast<int32_t>(tail - head);
    return n <= 0 ? 0 : (n >= static_cast<int32_t>(Capacity) ? Capacity : static_cast<uint32_t>(n));
  }

  /// True if size() == 0 (approximate, as size()).
  bool empty() const noexcept { return size() == 0; }

  /// The fixed number of slots.
  static constexpr std::size_t capacity() noexcept { return Capacity; }

  /// How many times a producer or wake_all() woke the consumer (wraps at 2^32). For tests and
  /// statistics: it shows whether the futex path is being taken.
  uint32_t wake_count() const noexcept {
    // relaxed: a statistic.
    return ctl_.futex_word.load(std::memory_order_relaxed);
  }

 private:
  using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, like FUTEX_WAIT's timeout
  static constexpr uint32_t kMask = Capacity - 1;

  struct Slot {
    std::atomic<uint32_t> seq;  // whose turn the slot is (see the protocol at the top)
    T value;
  };

  explicit Ring(uint32_t first) noexcept {
    ctl_.magic = detail::kRingMagic;
    ctl_.capacity = Capacity;
    ctl_.slot_size = sizeof(Slot);
    // relaxed (all stores here): the ring is published to other threads/processes by whatever
    // hands them the segment (thread start, fork, a release store of its offset).
    ctl_.tail.store(first, std::memory_order_relaxed);
    ctl_.head.store(first, std::memory_order_relaxed);
    ctl_.futex_word.store(0, std::memory_order_relaxed);
    ctl_.sleeping.store(0, std::memory_order_relaxed);
    ctl_.kick.store(0, std::memory_order_relaxed);
    for (uint32_t k = 0; k < Capacity; ++k) {
      slots_[(first + k) & kMask].seq.store(first + k, std::memory_order_relaxed);
    }
  }

  // Why no wakeup is lost. Consumer (pop_wait): S1 sleeping = 1; L1 load slot[head].seq;
  // sleep only if L1 saw it unpublished. Producer: S2 slot.seq = pos + 1; L2 load sleeping.
  // This is the store-buffering (Dekker) shape: with weaker orders (or on x86, whose store
  // buffer delays S1 and S2 past L1 and L2) both loads may see the old values, and the
  // consumer would sleep on a published item while the producer skips the wake. With all four
  // seq_cst, one total order holds them: if L1 comes before S2, then S1 < S2 < L2 and L2 sees
  // the flag; otherwise L1 sees the publish. (The consumer's relaxed clear of the flag after a
  // wake is harmless: it is always followed by a fresh S1/L1 before the next sleep.) Seeing the
  // flag, the producer bumps futex_word after the consumer read it (before S1), so FUTEX_WAIT
  // either finds the word changed (EAGAIN) or is queued before FUTEX_WAKE runs. Only one
  // producer needs to wake a sleeper, so the flag is taken with an exchange.
  // seq_cst accesses rather than two seq_cst fences: ThreadSanitizer models them (it ignores
  // fences), and on x86 a seq_cst store is one xchg, no dearer than a plain store + mfence.
  void notify_consumer() noexcept {
    // seq_cst: producer half of the Dekker pair (L2 above). On the hot path this is the only
    // cost of the wake protocol: a load of a line the consumer rarely writes.
    if (ctl_.sleeping.load(std::memory_order_seq_cst) == 0) return;
    // acquire: pairs with the consumer's store of the flag, so its read of futex_word
    // happens before our bump below. Returns 0 if another producer took the flag first.
    if (ctl_.sleeping.exchange(0, std::memory_order_acquire) == 0) return;
    // release: not needed by producers (see above); kept uniform with wake_all().
    ctl_.futex_word.fetch_add(1, std::memory_order_release);
    futex_wake(&ctl_.futex_word, 1);
  }

  bool next_is_published_seq_cst() const noexcept {
    // relaxed: head is the consumer's own index (only the consumer calls this).
    const uint32_t pos = ctl_.head.load(std::memory_order_relaxed);
    // seq_cst: consumer half of the Dekker pair (L1 in notify_consumer()'s comment).
    return slots_[pos & kMask].seq.load(std::memory_order_seq_cst) == pos + 1;
  }

  static int64_t nanos_since(Clock::time_point start) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  }

  detail::RingControl ctl_;
  alignas(kCacheLine) Slot slots_[Capacity];
};

}  // namespace ember
