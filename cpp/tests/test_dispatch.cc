// Dispatcher without processes: workers are slots marked ready by hand, and "running" a task
// is the worker's claim CAS. Checks where tasks go and what they lease (a-c, exclusive),
// FIFO of default tasks (D1), direct submission only past an empty queue (D2), stealing only
// default tasks (D3), lease accounting across lend and release (D4), stranded tasks (D5),
// workers kept to one kind of task, with GPUs or without (D6), and the notify levels.
#include "dispatch.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "runtime_test_util.h"
#include "store.h"

namespace ember {
namespace {

constexpr int64_t U = kResourceUnit;

class DispatchTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kWorkers = 4;
  static constexpr uint32_t kRecords = 256;
  RuntimeLayout layout_{kWorkers, kRecords};
  std::shared_ptr<Store> store_ = testing_util::runtime_store(layout_);
  RuntimeControl* rc_ = testing_util::runtime_control(*store_);
  int64_t totals_[kMaxResources] = {2 * U, 1 * U};  // 2 CPUs, 1 GPU
  NodeResources resources_{nullptr, totals_, nullptr};
  WorkerPool workers_{rc_, layout_, kWorkers, /*num_cpus=*/2};
  TaskTable table_{reinterpret_cast<TaskRecord*>(store_->runtime_region() + layout_.records_at),
                   kRecords};
  TaskEvents events_{100};
  Dispatcher d_{*store_, rc_, workers_, resources_, table_, events_};

  void start(uint32_t w) {
    ASSERT_TRUE(workers_.spawn(w));
    SpawnRequest req{};
    ASSERT_TRUE(rc_->spawn.try_pop(req));
    workers_.slot(w)->pid.store(1000 + static_cast<int32_t>(w));
    workers_.slot(w)->state.store(static_cast<uint32_t>(WorkerState::kReady));
    workers_.mark_ready(w);
  }
  static TaskSpec spec(const char* name, double cpus = 1, double gpus = 0) {
    TaskSpec s{};
    std::strncpy(s.name, name, sizeof s.name - 1);
    s.resources[kResourceCPU] = static_cast<int64_t>(cpus * U);
    s.resources[kResourceGPU] = static_cast<int64_t>(gpus * U);
    s.num_returns = 1;
    return s;
  }
  uint64_t load(uint32_t w) { return workers_.info(w).pushed - workers_.done(w); }
  int64_t cpus() { return resources_.available()[kResourceCPU]; }
  /// Worker w pops its next ref and claims it (a stale or stolen one only counts as done).
  /// Returns the record index it runs, or -1.
  int64_t claim_next(uint32_t w) {
    TaskRef ref;
    while (workers_.slot(w)->inbound.try_pop(ref)) {
      uint64_t expected = make_claim(ref.gen, 0, TaskState::kQueued);
      if (table_.record(ref.index)
              .claim.compare_exchange_strong(expected,
                                             make_claim(ref.gen, w, TaskState::kRunning))) {
        table_.record(ref.index).started_ns = 1;
        workers_.slot(w)->current.store(ref.index + 1);
        return ref.index;
      }
      workers_.slot(w)->done.fetch_add(1);
    }
    return -1;
  }
  void finish(uint32_t w, int64_t index) {
    TaskRecord& r = table_.record(static_cast<uint32_t>(index));
    r.claim.store(make_claim(claim_gen(r.claim.load()), w, TaskState::kDone));
    workers_.slot(w)->current.store(0);
    workers_.slot(w)->done.fetch_add(1);
  }
};

TEST_F(DispatchTest, DefaultTasksLeaseIdleWorkersThenShareTheLeastLoaded) {
  start(0);
  start(1);
  d_.submit(spec("a"), {});
  EXPECT_EQ(load(0), 1u);  // (b): worker 0 leased a CPU
  EXPECT_TRUE(workers_.info(0).lease.held);
  EXPECT_EQ(cpus(), 1 * U);
  d_.submit(spec("b"), {});
  EXPECT_EQ(load(1), 1u);  // (b) again: the other idle worker, not behind a
  EXPECT_EQ(cpus(), 0);
  d_.submit(spec("c"), {});
  d_.submit(spec("d"), {});
  EXPECT_EQ(load(0), 2u);  // (c): least loaded, lowest slot first
  EXPECT_EQ(load(1), 2u);
  EXPECT_EQ(cpus(), 0);    // sharing a lease takes no more CPU
  EXPECT_EQ(d_.stats().direct, 4u);
  EXPECT_EQ(d_.stats().dispatched, 4u);
  EXPECT_TRUE(d_.queue().empty());
}

TEST_F(DispatchTest, AWorkerHoldsAtMostkDepthDefaultTasks) {
  start(0);
  int64_t one[kMaxResources] = {1 * U};
  NodeResources one_cpu(nullptr, one, nullptr);
  Dispatcher d(*store_, rc_, workers_, one_cpu, table_, events_);
  for (uint64_t i = 0; i < Dispatcher::kDepth + 2; ++i) d.submit(spec("f"), {});
  EXPECT_EQ(load(0), Dispatcher::kDepth);
  EXPECT_EQ(d.queue().size(), 2u);
  // D2: once something is queued, even a worker with room gets nothing straight away.
  ASSERT_GE(claim_next(0), 0);
  finish(0, static_cast<int64_t>(workers_.info(0).assigned.front().index));
  d.submit(spec("g"), {});
  EXPECT_EQ(d.queue().size(), 3u);
  d.dispatch_queued();  // the scheduler thread: FIFO, one slot free in the ring
  EXPECT_EQ(d.queue().size(), 2u);
  EXPECT_STREQ(d.queue().back().spec.name, "g");
}

TEST_F(DispatchTest, NonDefaultTasksLeaseExactlyAndAloneWithTheirGpuIds) {
  start(0);
  start(1);
  ASSERT_TRUE(d_.try_dispatch(spec("gpu", 0.5, 1), false));
  const WorkerInfo& w0 = workers_.info(0);
  EXPECT_TRUE(w0.lease.held && w0.lease.exclusive);
  EXPECT_EQ(w0.lease.gpu_mask, 0b1u);
  EXPECT_EQ(table_.record(w0.assigned.front().index).gpu_mask, 0b1u);  // CUDA_VISIBLE_DEVICES
  EXPECT_EQ(cpus(), 3 * U / 2);
  EXPECT_EQ(resources_.available()[kResourceGPU], 0);
  EXPECT_FALSE(d_.try_dispatch(spec("gpu2", 0.5, 1), false));  // no GPU left: nothing changes
  EXPECT_FALSE(workers_.info(1).lease.held);
  d_.submit(spec("cpu"), {});
  EXPECT_EQ(load(0), 1u);  // nothing joins an exclusive lease
  EXPECT_EQ(load(1), 1u);
  // Done: the leases end and everything is back.
  finish(0, claim_next(0));
  finish(1, claim_next(1));
  d_.release_idle_leases();
  EXPECT_EQ(cpus(), 2 * U);
  EXPECT_EQ(resources_.available()[kResourceGPU], 1 * U);
  EXPECT_EQ(resources_.free_gpus(), 0b1u);
  EXPECT_EQ(table_.free_count(), kRecords);  // records reclaimed
  EXPECT_EQ(events_.size(), 2u);
}

TEST_F(DispatchTest, DefaultTasksStayInOrderButOthersMayPass) {
  start(0);
  start(1);
  for (int i = 0; i < 8; ++i) d_.submit(spec("f"), {});  // 4 + 4: both rings full
  d_.submit(spec("late-1"), {});
  d_.submit(spec("zero", 0), {});  // needs no CPU: may overtake, but no idle worker yet
  d_.submit(spec("late-2"), {});
  ASSERT_EQ(d_.queue().size(), 3u);
  start(2);  // an idle worker without a lease appears; no CPU is left for a default lease
  d_.dispatch_queued();
  ASSERT_EQ(d_.queue().size(), 2u);  // "zero" went, the defaults kept their order
  EXPECT_STREQ(d_.queue()[0].spec.name, "late-1");
  EXPECT_STREQ(d_.queue()[1].spec.name, "late-2");
  EXPECT_EQ(load(2), 1u);
  EXPECT_TRUE(workers_.info(2).lease.exclusive);
}

TEST_F(DispatchTest, TasksWaitForTheirDeps) {
  start(0);
  const ObjectID dep = store_->new_id();
  ASSERT_TRUE(store_->create_object(dep, 8).ok());
  d_.submit(spec("f"), {dep});
  EXPECT_EQ(d_.queue().size(), 1u);
  EXPECT_EQ(rc_->notify.load(), 2u);  // someone waits on a result: ring after every task
  d_.dispatch_queued();
  EXPECT_EQ(d_.queue().size(), 1u);
  ASSERT_TRUE(store_->seal(dep).ok());
  d_.dispatch_queued();
  EXPECT_TRUE(d_.queue().empty());
  EXPECT_EQ(load(0), 1u);
}

TEST_F(DispatchTest, BlockedWorkersLendTheirLeaseAndTakeItBack) {
  start(0);
  start(1);
  d_.submit(spec("parent"), {});
  d_.submit(spec("other"), {});
  ASSERT_EQ(cpus(), 0);
  workers_.slot(0)->blocked.store(1);  // the parent waits in get()
  d_.lend_blocked_leases();
  EXPECT_EQ(cpus(), 1 * U);
  EXPECT_TRUE(workers_.info(0).lease.lent);
  d_.update_notify_flags(false);
  EXPECT_EQ(rc_->notify.load(), 2u);  // a lent lease: ring after every task
  workers_.slot(0)->blocked.store(0);
  d_.lend_blocked_leases();
  EXPECT_EQ(cpus(), 0);
  EXPECT_FALSE(workers_.info(0).lease.lent);
}

TEST_F(DispatchTest, AnIdleWorkerStealsTheOldestQueuedDefaultTask) {
  start(0);
  d_.submit(spec("running"), {});
  d_.submit(spec("waiting-1"), {});
  d_.submit(spec("waiting-2"), {});
  ASSERT_GE(claim_next(0), 0);  // worker 0 runs the first; the others wait behind it
  start(1);
  d_.steal_for_idle_workers();
  EXPECT_EQ(d_.stats().stolen, 1u);
  ASSERT_EQ(workers_.info(1).assigned.size(), 1u);
  const TaskRef stolen = workers_.info(1).assigned.front();
  EXPECT_STREQ(table_.record(stolen.index).spec.name, "waiting-1");
  EXPECT_TRUE(workers_.info(1).lease.held);  // the thief leased its CPU
  EXPECT_EQ(cpus(), 0);
  // Both rings hold it; the claim decides. The thief wins, the victim's copy only counts done.
  EXPECT_EQ(claim_next(1), static_cast<int64_t>(stolen.index));
  d_.steal_for_idle_workers();  // nobody idle now: nothing moves
  EXPECT_EQ(d_.stats().stolen, 1u);
}

TEST_F(DispatchTest, TasksWithTheirOwnLeaseAreNeverStolen) {
  start(0);
  ASSERT_TRUE(d_.try_dispatch(spec("gpu-a", 0.5, 0.5), false));
  workers_.info(0).lease.exclusive = false;  // as if it had room for another (it never does)
  ASSERT_TRUE(workers_.push(0, *table_.publish(spec("gpu-b", 0.5, 0.5), 0)));
  ASSERT_GE(claim_next(0), 0);
  start(1);
  d_.steal_for_idle_workers();
  EXPECT_EQ(d_.stats().stolen, 0u);
  EXPECT_TRUE(workers_.info(1).assigned.empty());
}

TEST_F(DispatchTest, StrandedTasksBehindABlockedWorkerWantAWorker) {
  start(0);
  start(1);
  d_.submit(spec("parent"), {});
  d_.submit(spec("child"), {});  // (b): worker 1, idle
  // Make the child land behind its parent instead: one worker, the parent blocked on it.
  ASSERT_GE(claim_next(0), 0);
  const int64_t child = claim_next(1);
  finish(1, child);
  d_.release_idle_leases();
  d_.submit(spec("grandchild"), {});  // (a): worker 1 holds no lease now; (b) leases it again
  EXPECT_EQ(load(1), 1u);
  ASSERT_GE(claim_next(1), 0);
  d_.submit(spec("stuck"), {});  // (c): behind worker 0's running parent (least loaded first)
  ASSERT_EQ(load(0), 2u);
  workers_.slot(0)->blocked.store(1);
  d_.lend_blocked_leases();  // its CPU is free for the stuck task
  int64_t avail[kMaxResources];
  std::copy(resources_.available(), resources_.available() + kMaxResources, avail);
  EXPECT_EQ(d_.count_stranded(avail), 1u);
  EXPECT_EQ(avail[kResourceCPU], 0);  // the stranded task took the free CPU
  Dispatcher::Demand demand = d_.start_workers();
  EXPECT_EQ(demand.alive, 2u);
  EXPECT_EQ(demand.to_start, 1u);  // no idle worker: start one, it will steal the task
}

TEST_F(DispatchTest, AWorkerRunsOnlyTheKindOfTaskItsFirstTaskWas) {
  start(0);
  d_.submit(spec("cpu"), {});
  finish(0, claim_next(0));
  d_.release_idle_leases();
  EXPECT_EQ(workers_.info(0).gpu, 0);
  // D6: the idle worker ran a task without GPUs, so a GPU task waits for another worker...
  EXPECT_FALSE(d_.try_dispatch(spec("gpu", 1, 1), false));
  d_.enqueue(Pending{spec("gpu", 1, 1)});
  EXPECT_EQ(d_.start_workers().to_start, 1u);  // ...and one is started for it
  start(1);
  (void)d_.dispatch_queued();
  EXPECT_TRUE(d_.queue().empty());
  EXPECT_EQ(load(1), 1u);
  EXPECT_EQ(workers_.info(1).gpu, 1);
  finish(1, claim_next(1));
  d_.release_idle_leases();
  // The GPU worker takes GPU tasks only; a CPU task goes to the CPU worker.
  d_.submit(spec("cpu2"), {});
  EXPECT_EQ(load(0), 1u);
  EXPECT_EQ(load(1), 0u);
  finish(0, claim_next(0));
  d_.release_idle_leases();
  ASSERT_TRUE(d_.try_dispatch(spec("gpu2", 1, 1), false));
  EXPECT_EQ(load(1), 1u);
}

TEST_F(DispatchTest, NotifyLevels) {
  start(0);
  d_.update_notify_flags(false);
  EXPECT_EQ(rc_->notify.load(), 0u);  // nothing to do
  d_.update_notify_flags(true);
  EXPECT_EQ(rc_->notify.load(), 2u);  // an actor's calls wait for its ring
  d_.submit(spec("a"), {});
  d_.submit(spec("b"), {});
  d_.update_notify_flags(false);
  EXPECT_EQ(rc_->notify.load(), 1u);  // more than one in a ring: ring when nearly empty
}

}  // namespace
}  // namespace ember
