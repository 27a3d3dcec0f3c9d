// Tests for ember::QueuedSpec: every kind of spec survives packing, copying and moving
// unchanged, and a plain task carries no tail.
#include "queued_spec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace ember {
namespace {

TaskSpec plain() {
  TaskSpec s{};
  s.function = ObjectID{9, 1};
  s.returns = ObjectID{9, 2};
  s.num_returns = 1;
  s.max_retries = 3;
  s.flags = kSpecNoArgs;
  s.resources[kResourceCPU] = kResourceUnit;
  std::strncpy(s.name, "noop", sizeof s.name - 1);
  return s;
}

TaskSpec rich() {
  TaskSpec s = plain();
  s.flags = kSpecArgsInline | kSpecRetryExceptions;
  s.args_inline_len = 100;
  for (int i = 0; i < 100; ++i) s.args_inline[i] = static_cast<uint8_t>(i * 3);
  s.num_deps = 4;
  for (uint64_t i = 0; i < 4; ++i) s.deps[i] = ObjectID{9, 100 + i};
  s.attempt = 2;
  s.actor = 7;
  s.max_task_retries = -1;
  s.parent_index = 12;
  s.parent_gen = 34;
  s.resources[kResourceGPU] = 5000;
  s.resources[5] = 123;
  std::memset(s.name, 'x', sizeof s.name - 1);  // the longest name a spec holds
  return s;
}

void expect_same(const TaskSpec& a, const TaskSpec& b) {
  EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0) << "the spec changed in the queue";
}

TEST(QueuedSpecTest, RoundTripsEveryField) {
  for (TaskSpec s : {plain(), rich()}) {
    QueuedSpec q(s);
    expect_same(TaskSpec(q), s);
    EXPECT_EQ(q.returns, s.returns);
    EXPECT_EQ(q.resources[kResourceCPU], kResourceUnit);
    EXPECT_STREQ(q.name, std::string(s.name).c_str());
  }
  TaskSpec by_object = plain();
  by_object.flags = 0;  // args in an object of their own
  by_object.args = ObjectID{9, 55};
  by_object.num_deps = 1;
  by_object.deps[0] = ObjectID{9, 56};
  expect_same(TaskSpec(QueuedSpec(by_object)), by_object);
}

TEST(QueuedSpecTest, CopiesAndMovesKeepTheirOwnTail) {
  TaskSpec s = rich();
  std::vector<QueuedSpec> v;
  for (int i = 0; i < 100; ++i) v.emplace_back(s);  // reallocations move them
  QueuedSpec copy = v[50];
  v.clear();  // the original tails are gone: the copy must not point into them
  expect_same(TaskSpec(copy), s);
  QueuedSpec assigned(plain());
  assigned = copy;
  expect_same(TaskSpec(assigned), s);
  QueuedSpec moved(std::move(assigned));
  expect_same(TaskSpec(moved), s);
}

TEST(QueuedSpecTest, NamesAndResourcesAreInterned) {
  QueuedSpec a(plain()), b(plain());
  EXPECT_EQ(a.name, b.name) << "one copy of a name for all its tasks";
  EXPECT_EQ(a.resources, b.resources);
  TaskSpec other = plain();
  other.resources[kResourceCPU] = 2 * kResourceUnit;
  std::strncpy(other.name, "other", sizeof other.name - 1);
  QueuedSpec c(other);
  EXPECT_NE(c.name, a.name);
  EXPECT_EQ(c.resources[kResourceCPU], 2 * kResourceUnit);
  EXPECT_EQ(a.resources[kResourceCPU], kResourceUnit);
}

TEST(QueuedSpecTest, BeyondThePoolEachSpecCarriesItsOwn) {
  // Distinct names past the pool's bound: later ones live in each spec's tail.
  std::vector<QueuedSpec> v;
  for (size_t i = 0; i < QueuedSpec::kMaxInterned + 10; ++i) {
    TaskSpec s = plain();
    std::snprintf(s.name, sizeof s.name, "task-%zu", i);
    s.resources[4] = static_cast<int64_t>(i + 1);
    v.emplace_back(s);
  }
  for (size_t i = 0; i < v.size(); ++i) {
    TaskSpec s = v[i];
    EXPECT_EQ(std::string(s.name), "task-" + std::to_string(i));
    EXPECT_EQ(s.resources[4], static_cast<int64_t>(i + 1));
  }
}

}  // namespace
}  // namespace ember
