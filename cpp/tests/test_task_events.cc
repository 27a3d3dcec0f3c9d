// TaskEvents: a bounded ring, oldest first, names interned, unstarted records skipped.
#include "task_events.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>

namespace ember {
namespace {

std::unique_ptr<TaskRecord> rec(const char* name, uint64_t start, uint64_t end, int32_t pid = 9) {
  auto r = std::make_unique<TaskRecord>();
  r->spec = TaskSpec{};
  std::strncpy(r->spec.name, name, sizeof r->spec.name - 1);
  r->started_ns = start;
  r->finished_ns = end;
  r->worker_pid = pid;
  return r;
}

TEST(TaskEventsTest, KeepsEventsInOrder) {
  TaskEvents ev(10);
  ev.record(*rec("f", 1, 2, 100));
  ev.record(*rec("g", 3, 4, 101));
  ev.record(*rec("f", 5, 6, 100));
  auto out = ev.snapshot();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].name, "f");
  EXPECT_EQ(out[1].name, "g");
  EXPECT_EQ(out[2].name, "f");  // a name seen before, not the last one: looked up again
  EXPECT_EQ(out[1].worker_pid, 101);
  EXPECT_EQ(out[2].started_ns, 5u);
  EXPECT_EQ(out[2].finished_ns, 6u);
}

TEST(TaskEventsTest, SkipsTasksThatNeverStarted) {
  TaskEvents ev(10);
  ev.record(*rec("cancelled", 0, 0));
  EXPECT_EQ(ev.size(), 0u);
}

TEST(TaskEventsTest, WrapsAroundKeepingTheNewest) {
  TaskEvents ev(3);
  for (uint64_t i = 1; i <= 7; ++i) ev.record(*rec(i % 2 ? "odd" : "even", i, i + 1));
  auto out = ev.snapshot();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].started_ns, 5u);  // oldest kept first
  EXPECT_EQ(out[1].started_ns, 6u);
  EXPECT_EQ(out[2].started_ns, 7u);
  EXPECT_EQ(out[0].name, "odd");
  EXPECT_EQ(out[1].name, "even");
}

TEST(TaskEventsTest, AFullLengthNameIsKeptWhole) {
  TaskEvents ev(2);
  std::string name(sizeof(TaskSpec::name) - 1, 'x');
  ev.record(*rec(name.c_str(), 1, 2));
  ev.record(*rec(name.c_str(), 3, 4));  // the same name again: the remembered one
  auto out = ev.snapshot();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].name, name);
  EXPECT_EQ(out[1].name, name);
}

}  // namespace
}  // namespace ember
