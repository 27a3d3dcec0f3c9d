// TaskTable: records in a store's runtime region are published with the generation a worker's
// claim must match (T2), reused last-freed first with a new generation (T4), so every copy of
// an old TaskRef goes stale, and the table runs dry and recovers.
#include "task_table.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <set>

#include "runtime_test_util.h"
#include "store.h"

namespace ember {
namespace {

class TaskTableTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kCapacity = 8;
  RuntimeLayout layout_{4, kCapacity};
  std::shared_ptr<Store> store_ = testing_util::runtime_store(layout_);
  TaskRecord* records_ =
      reinterpret_cast<TaskRecord*>(store_->runtime_region() + layout_.records_at);
  TaskTable table_{records_, kCapacity};

  static TaskSpec spec(const char* name) {
    TaskSpec s{};
    std::strncpy(s.name, name, sizeof s.name - 1);
    s.resources[kResourceCPU] = kResourceUnit;
    return s;
  }
  /// What a worker's next_task() does with a ref: true if it wins the claim.
  bool claim(const TaskRef& ref, uint32_t worker) {
    uint64_t expected = make_claim(ref.gen, 0, TaskState::kQueued);
    return records_[ref.index].claim.compare_exchange_strong(
        expected, make_claim(ref.gen, worker, TaskState::kRunning));
  }
  void finish(const TaskRef& ref, uint32_t worker) {
    records_[ref.index].claim.store(make_claim(ref.gen, worker, TaskState::kDone));
  }
};

TEST_F(TaskTableTest, PublishWritesTheRecordAndQueuesIt) {
  records_[0].started_ns = 5;  // left over from an earlier task
  records_[0].worker_pid = 77;
  auto ref = table_.publish(spec("f"), 0b10);
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->index, 0u);  // T4: the lowest index first on a fresh table
  EXPECT_EQ(ref->gen, 1u);
  const TaskRecord& r = table_.record(ref->index);
  EXPECT_STREQ(r.spec.name, "f");
  EXPECT_EQ(r.gpu_mask, 0b10u);
  EXPECT_EQ(r.started_ns, 0u);
  EXPECT_EQ(r.worker_pid, 0);
  EXPECT_EQ(claim_state(table_.claim(ref->index)), TaskState::kQueued);
  EXPECT_TRUE(table_.current(*ref));
  EXPECT_EQ(table_.free_count(), kCapacity - 1);
}

TEST_F(TaskTableTest, ExactlyOneCopyOfARefRuns) {
  auto ref = table_.publish(spec("f"), 0);
  ASSERT_TRUE(ref.has_value());
  EXPECT_TRUE(claim(*ref, 1));   // the worker it was pushed to
  EXPECT_FALSE(claim(*ref, 2));  // the thief's copy: already claimed
  EXPECT_EQ(claim_worker(table_.claim(ref->index)), 1u);
}

TEST_F(TaskTableTest, ReuseBumpsTheGenerationSoOldRefsAreStale) {
  auto first = table_.publish(spec("f"), 0);
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(claim(*first, 1));
  finish(*first, 1);
  table_.free(first->index);
  EXPECT_FALSE(table_.current(*first));
  EXPECT_EQ(claim_state(table_.claim(first->index)), TaskState::kFree);
  EXPECT_EQ(table_.generation(first->index), 2u);

  auto second = table_.publish(spec("g"), 0);  // T4: the record just freed
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->index, first->index);
  EXPECT_EQ(second->gen, first->gen + 1);
  EXPECT_FALSE(claim(*first, 2));  // a stale copy left in some ring never runs g
  EXPECT_TRUE(claim(*second, 2));
}

TEST_F(TaskTableTest, FreeingAQueuedRecordMakesItsRefStale) {
  // A dead worker's unclaimed task: freed (and re-queued elsewhere) before anyone claimed it.
  auto ref = table_.publish(spec("f"), 0);
  ASSERT_TRUE(ref.has_value());
  table_.free(ref->index);
  EXPECT_FALSE(claim(*ref, 3));
}

TEST_F(TaskTableTest, RunsDryAndRecovers) {
  std::set<uint32_t> indices;
  for (uint32_t i = 0; i < kCapacity; ++i) {
    auto ref = table_.publish(spec("f"), 0);
    ASSERT_TRUE(ref.has_value());
    indices.insert(ref->index);
  }
  EXPECT_EQ(indices.size(), kCapacity);  // all distinct
  EXPECT_FALSE(table_.has_free());
  EXPECT_FALSE(table_.publish(spec("f"), 0).has_value());
  table_.free(5);
  table_.free(2);
  auto a = table_.publish(spec("f"), 0);
  auto b = table_.publish(spec("f"), 0);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->index, 2u);  // last freed first
  EXPECT_EQ(b->index, 5u);
  EXPECT_EQ(a->gen, 2u);
}

TEST_F(TaskTableTest, GenerationsAreIndependentPerRecord) {
  for (int round = 0; round < 100; ++round) {
    auto ref = table_.publish(spec("f"), 0);
    ASSERT_TRUE(ref.has_value());
    table_.free(ref->index);
  }
  EXPECT_EQ(table_.generation(0), 101u);
  EXPECT_EQ(table_.generation(1), 1u);
}

TEST_F(TaskTableTest, ATaskIsFinishedOnceDoneOrOnceItsWorkerGaveBackItsInputs) {
  auto ref = table_.publish(spec("f"), 0);
  ASSERT_TRUE(ref.has_value() && claim(*ref, 3));
  EXPECT_FALSE(table_.finished_by(*ref, 3)) << "running: a death now means a retry";
  records_[ref->index].inputs_released.store(1);  // Worker::finish, results sealed (T5)
  EXPECT_TRUE(table_.finished_by(*ref, 3)) << "a death now: finished, never retried";
  EXPECT_FALSE(table_.finished_by(*ref, 4)) << "only for the worker that runs it";
  table_.free(ref->index);
  EXPECT_FALSE(table_.finished_by(*ref, 3)) << "stale";

  auto next = table_.publish(spec("g"), 0);  // the same record again: the flag starts clear
  ASSERT_TRUE(next.has_value() && next->index == ref->index && claim(*next, 3));
  EXPECT_FALSE(table_.finished_by(*next, 3));
  finish(*next, 3);
  EXPECT_TRUE(table_.finished_by(*next, 3));
}

}  // namespace
}  // namespace ember
