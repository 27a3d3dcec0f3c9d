// WorkerPool without processes: spawn requests and fresh rings (P1), the room margin (P2),
// reclaiming records in push order (P3), exits read with their log tails (P4), retiring idle
// extras only above num_cpus (P5); and tail_lines() against a getline reference.
#include "worker_pool.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <random>

#include "runtime_test_util.h"
#include "store.h"

namespace ember {
namespace {

class WorkerPoolTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kWorkers = 6;
  static constexpr uint32_t kRecords = 128;
  RuntimeLayout layout_{kWorkers, kRecords};
  std::shared_ptr<Store> store_ = testing_util::runtime_store(layout_);
  RuntimeControl* rc_ = testing_util::runtime_control(*store_);
  WorkerPool pool_{rc_, layout_, kWorkers, /*num_cpus=*/2};
  TaskTable table_{reinterpret_cast<TaskRecord*>(store_->runtime_region() + layout_.records_at),
                   kRecords};
  TaskEvents events_{100};

  /// What the forkserver and the new worker do: pop the request, announce.
  SpawnRequest start(uint32_t w, int32_t pid) {
    EXPECT_TRUE(pool_.spawn(w));
    SpawnRequest req{};
    EXPECT_TRUE(rc_->spawn.try_pop(req));
    pool_.slot(w)->pid.store(pid);
    pool_.slot(w)->state.store(static_cast<uint32_t>(WorkerState::kReady));
    EXPECT_TRUE(pool_.announced(w));
    pool_.mark_ready(w);
    return req;
  }
  TaskRef publish(const char* name) {
    TaskSpec s{};
    std::strncpy(s.name, name, sizeof s.name - 1);
    auto ref = table_.publish(s, 0);
    EXPECT_TRUE(ref.has_value());
    return *ref;
  }
  /// The worker runs ref to the end (claim, times, DONE, done + 1).
  void run(uint32_t w, const TaskRef& ref) {
    TaskRecord& r = table_.record(ref.index);
    uint64_t expected = make_claim(ref.gen, 0, TaskState::kQueued);
    ASSERT_TRUE(r.claim.compare_exchange_strong(expected,
                                                make_claim(ref.gen, w, TaskState::kRunning)));
    r.started_ns = 10;
    r.finished_ns = 20;
    r.claim.store(make_claim(ref.gen, w, TaskState::kDone));
    pool_.slot(w)->done.fetch_add(1);
  }
};

TEST_F(WorkerPoolTest, SpawnAsksTheForkserverWithANewGeneration) {
  ASSERT_TRUE(pool_.spawn(3, /*actor=*/7));
  SpawnRequest req{};
  ASSERT_TRUE(rc_->spawn.try_pop(req));
  EXPECT_EQ(req.slot, 3u);
  EXPECT_EQ(req.generation, 1u);
  EXPECT_EQ(req.actor, 1u);  // "host an actor": the forkserver preloads its runtime
  EXPECT_EQ(pool_.info(3).state, WorkerState::kStarting);
  EXPECT_EQ(pool_.info(3).actor, 7u);
  EXPECT_EQ(pool_.used(), 4u);
  EXPECT_EQ(pool_.free_slot(), 0);
  EXPECT_FALSE(pool_.announced(3));  // not until the worker says so
  pool_.reset(3);
  ASSERT_TRUE(pool_.spawn(3));
  ASSERT_TRUE(rc_->spawn.try_pop(req));
  EXPECT_EQ(req.generation, 2u);
  EXPECT_EQ(req.actor, 0u);
}

TEST_F(WorkerPoolTest, SpawnFailsWithoutWaitingWhenTheForkserverStoppedReading) {
  SpawnRequest filler{0, 0, 0};
  while (rc_->spawn.try_push(filler)) {
  }
  EXPECT_FALSE(pool_.spawn(1));
  EXPECT_EQ(pool_.info(1).state, WorkerState::kUnused);
}

TEST_F(WorkerPoolTest, SpawnGivesTheSlotFreshRingsAndCounters) {
  start(0, 100);
  pool_.slot(0)->done.store(9);
  pool_.slot(0)->blocked.store(1);
  ASSERT_TRUE(pool_.slot(0)->inbound.try_push(TaskRef{1, 1}));
  pool_.reset(0);
  ASSERT_TRUE(pool_.spawn(0));
  EXPECT_EQ(pool_.slot(0)->done.load(), 0u);
  EXPECT_EQ(pool_.slot(0)->blocked.load(), 0u);
  EXPECT_EQ(pool_.slot(0)->inbound.size(), 0u);
  EXPECT_EQ(pool_.info(0).pushed, 0u);
}

TEST_F(WorkerPoolTest, IdleMeansReadyTaskWorkerWithNothingToDo) {
  EXPECT_FALSE(pool_.is_idle(0));  // unused
  ASSERT_TRUE(pool_.spawn(0));
  EXPECT_FALSE(pool_.is_idle(0));  // starting
  start(1, 101);
  EXPECT_TRUE(pool_.is_idle(1));
  TaskRef ref = publish("f");
  ASSERT_TRUE(pool_.push(1, ref));
  EXPECT_FALSE(pool_.is_idle(1));  // has a task to look at
  run(1, ref);
  EXPECT_TRUE(pool_.is_idle(1));
  pool_.slot(1)->blocked.store(1);
  EXPECT_FALSE(pool_.is_idle(1));  // blocked in get()
  pool_.slot(1)->blocked.store(0);
  pool_.info(1).retiring = true;
  EXPECT_FALSE(pool_.is_idle(1));  // P5
  pool_.info(1).retiring = false;
  pool_.info(1).actor = 4;
  EXPECT_FALSE(pool_.is_idle(1));  // an actor takes no tasks
}

TEST_F(WorkerPoolTest, RoomKeepsAMarginBelowTheRingsCapacity) {
  start(0, 100);
  uint32_t pushed = 0;
  while (pool_.has_room(0)) {
    ASSERT_TRUE(pool_.push(0, publish("f")));
    ++pushed;
  }
  EXPECT_EQ(pushed, kInboundCapacity - WorkerPool::kRoomMargin);
  // The margin is real room: a stolen copy pushed after a check still fits.
  for (uint64_t i = 0; i < WorkerPool::kRoomMargin; ++i) {
    EXPECT_TRUE(pool_.push(0, TaskRef{0, 0}));
  }
  EXPECT_FALSE(pool_.push(0, TaskRef{0, 0}));  // now the ring is full: the push says so
  EXPECT_EQ(pool_.info(0).pushed, kInboundCapacity);
}

TEST_F(WorkerPoolTest, ReclaimFreesFinishedRecordsInPushOrder) {
  start(0, 100);
  TaskRef a = publish("a"), b = publish("b"), c = publish("c");
  ASSERT_TRUE(pool_.push(0, a) && pool_.push(0, b) && pool_.push(0, c));
  const size_t free_before = table_.free_count();
  run(0, b);  // b finished (say a ran on a thief), a not yet
  pool_.reclaim(0, table_, events_);
  EXPECT_EQ(table_.free_count(), free_before);  // P3: stops at a
  EXPECT_EQ(pool_.info(0).assigned.size(), 3u);
  run(0, a);
  pool_.reclaim(0, table_, events_);
  EXPECT_EQ(table_.free_count(), free_before + 2);
  EXPECT_FALSE(table_.current(a));
  EXPECT_FALSE(table_.current(b));
  EXPECT_TRUE(table_.current(c));
  ASSERT_EQ(pool_.info(0).assigned.size(), 1u);
  EXPECT_EQ(pool_.info(0).assigned.front().index, c.index);
  auto ev = events_.snapshot();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].name, "a");
  EXPECT_EQ(ev[1].name, "b");
}

TEST_F(WorkerPoolTest, ReclaimDropsStaleCopiesWithoutFreeingTwice) {
  // A stolen task: one record, a ref in two workers' lists. The thief runs it and its list
  // frees it; the victim's copy is then stale and only dropped.
  start(0, 100);
  start(1, 101);
  TaskRef ref = publish("f");
  ASSERT_TRUE(pool_.push(0, ref));
  ASSERT_TRUE(pool_.push(1, ref));
  run(1, ref);
  pool_.reclaim(1, table_, events_);
  const size_t free_after = table_.free_count();
  pool_.slot(0)->done.fetch_add(1);  // the victim pops it, loses the CAS, counts it done
  pool_.reclaim(0, table_, events_);
  EXPECT_EQ(table_.free_count(), free_after);
  EXPECT_TRUE(pool_.info(0).assigned.empty());
  EXPECT_EQ(events_.size(), 1u);
}

TEST_F(WorkerPoolTest, DrainLeavesNoRecordOfADeadWorkerBehind) {
  start(0, 100);
  start(1, 101);
  TaskRef done = publish("done"), theirs = publish("theirs"), queued = publish("queued");
  ASSERT_TRUE(pool_.push(0, done) && pool_.push(0, theirs) && pool_.push(0, queued));
  ASSERT_TRUE(pool_.push(1, theirs));  // stolen: worker 1 runs it
  run(0, done);                        // finished, but not reclaimed before the death
  uint64_t expected = make_claim(theirs.gen, 0, TaskState::kQueued);
  ASSERT_TRUE(table_.record(theirs.index)
                  .claim.compare_exchange_strong(expected,
                                                 make_claim(theirs.gen, 1, TaskState::kRunning)));
  std::vector<std::string> asked;
  pool_.drain(0, table_, events_, [&](const TaskRef& ref, uint64_t c) {
    asked.push_back(table_.record(ref.index).spec.name);
    return !(claim_state(c) == TaskState::kRunning && claim_worker(c) != 0);
  });
  EXPECT_EQ(asked, (std::vector<std::string>{"theirs", "queued"}));  // not the finished one
  EXPECT_FALSE(table_.current(done));   // freed, with its event
  EXPECT_TRUE(table_.current(theirs));  // left to worker 1
  EXPECT_FALSE(table_.current(queued));
  EXPECT_TRUE(pool_.info(0).assigned.empty());
  EXPECT_EQ(events_.size(), 1u);
}

TEST_F(WorkerPoolTest, RetiresOnlyIdleExtrasAfterTheIdleTime) {
  for (uint32_t w = 0; w < 4; ++w) start(w, 100 + static_cast<int32_t>(w));  // num_cpus 2
  pool_.info(2).lease.held = true;  // leased: not idle
  EXPECT_TRUE(pool_.retire_idle(1000, 500).empty());  // idle since 1000
  EXPECT_TRUE(pool_.retire_idle(1400, 500).empty());
  auto pids = pool_.retire_idle(1500, 500);
  // Two of the four may go (two stay: num_cpus), but worker 2 is leased: 0 and 1 go first.
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_EQ(pids[0], 100);
  EXPECT_EQ(pids[1], 101);
  EXPECT_TRUE(pool_.info(0).retiring && pool_.info(1).retiring);
  EXPECT_FALSE(pool_.is_idle(0));
  EXPECT_TRUE(pool_.retire_idle(9000, 500).empty());  // never below num_cpus
}

TEST_F(WorkerPoolTest, BusyTimeRestartsTheIdleClock) {
  for (uint32_t w = 0; w < 3; ++w) start(w, 100 + static_cast<int32_t>(w));
  EXPECT_TRUE(pool_.retire_idle(1000, 500).empty());
  TaskRef ref = publish("f");
  ASSERT_TRUE(pool_.push(0, ref));
  ASSERT_TRUE(pool_.push(1, publish("g")));
  EXPECT_TRUE(pool_.retire_idle(1200, 500).empty());  // 0 and 1 busy
  run(0, ref);
  auto pids = pool_.retire_idle(1600, 500);  // 2 idle since 1000; 0 only since 1600
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_EQ(pids[0], 102);
}

TEST_F(WorkerPoolTest, AWorkerThatAskedToRetireGetsNothingMoreAndGoesOnceDrained) {
  start(0, 100);
  start(1, 101);  // two workers, num_cpus 2: neither is an extra
  TaskRef ref = publish("f");
  ASSERT_TRUE(pool_.push(0, ref));
  pool_.slot(0)->retire_asked.store(1);  // max_calls reached while it still has `ref`
  EXPECT_TRUE(pool_.retiring(0));
  EXPECT_TRUE(pool_.retire_idle(1000, 500).empty()) << "it first runs what it was handed";
  run(0, ref);
  EXPECT_FALSE(pool_.is_idle(0)) << "nothing more is pushed to it (P5)";
  auto pids = pool_.retire_idle(1001, 500);
  ASSERT_EQ(pids.size(), 1u) << "at once, though it is not an extra";
  EXPECT_EQ(pids[0], 100);
  EXPECT_TRUE(pool_.is_idle(1));
  pool_.reset(0);
  ASSERT_TRUE(pool_.spawn(0));
  EXPECT_EQ(pool_.slot(0)->retire_asked.load(), 0u) << "a new process starts afresh";
}

TEST_F(WorkerPoolTest, ReadExitsDescribesEachExitedWorkerWithItsLog) {
  char dir[] = "/tmp/ember-test-pool-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  start(0, 4242);
  start(1, 4243);
  {
    std::ofstream err(std::string(dir) + "/worker-4242.err");
    err << "Traceback\n\x1e:task:f\nboom\n";
  }
  pool_.slot(0)->exit_status.store(9);  // wait status: killed by SIGKILL
  pool_.slot(0)->state.store(static_cast<uint32_t>(WorkerState::kExited));
  auto notes = pool_.read_exits(dir);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].slot, 0u);
  EXPECT_EQ(notes[0].generation, pool_.info(0).generation);
  EXPECT_EQ(notes[0].pid, 4242);
  EXPECT_EQ(notes[0].why, "worker pid=4242 killed by signal 9 (SIGKILL). Its last output (" +
                              std::string(dir) + "/worker-4242.err):\n    Traceback\n    boom\n");
  EXPECT_EQ(describe_exit(dir, 3 << 8, 4243), "worker pid=4243 exited with code 3.");
  std::remove((std::string(dir) + "/worker-4242.err").c_str());
  rmdir(dir);
}

/// The reference: what describe_exit() did before, reading the whole file with getline.
std::string tail_by_getline(const std::string& path, int n) {
  std::ifstream f(path);
  if (!f) return "";
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("\x1e:task:", 0) == 0) continue;
    lines.push_back(line);
    if (static_cast<int>(lines.size()) > n) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += "    " + l + "\n";
  return out;
}

TEST(TailLinesTest, MatchesReadingTheWholeFile) {
  char path[] = "/tmp/ember-test-tail-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::mt19937 rng(3);
  const std::vector<std::string> kinds = {"", "short", "\x1e:task:f", "\x1e:ta",
                                          std::string(3000, 'x'), std::string(70000, 'y')};
  for (int round = 0; round < 200; ++round) {
    std::string text;
    const int lines = static_cast<int>(rng() % 120);
    for (int i = 0; i < lines; ++i) text += kinds[rng() % kinds.size()] + "\n";
    if (rng() % 3 == 0) text += "no newline at the end";
    {
      std::ofstream f(path, std::ios::trunc | std::ios::binary);
      f << text;
    }
    const int n = 1 + static_cast<int>(rng() % 50);
    ASSERT_EQ(tail_lines(path, n), tail_by_getline(path, n)) << "round " << round;
  }
  EXPECT_EQ(tail_lines("/nonexistent/ember", 40), "");
  std::remove(path);
}

}  // namespace
}  // namespace ember
