// ContentionWatch: deltas per process (C1), no decision from the first sample (C2), and
// hysteresis that needs both signs, waiting and others' CPU use (C3); read_sample() reads this
// process's own counters.
#include "contention.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace ember {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t P = ContentionWatch::kPeriodNs;

/// Feeds samples one period apart; the counters grow by the given amounts per period.
class ContentionTest : public ::testing::Test {
 protected:
  ContentionWatch watch_{4};
  ContentionSample s_{};
  /// One period in which the node waited `waited` and others used `others` of a CPU.
  bool period(double waited, double others, double ours = 0.1) {
    s_.now_ns += P;
    s_.driver_waited_ns += static_cast<uint64_t>(waited * P);
    s_.driver_cpu_ns += static_cast<uint64_t>(ours * P);
    s_.machine_busy_ns += static_cast<uint64_t>((ours + others) * P);
    return watch_.observe(s_);
  }
  void SetUp() override {
    s_.now_ns = 1000 * kMs;
    EXPECT_FALSE(watch_.observe(s_));  // C2: baselines only
  }
};

TEST_F(ContentionTest, TurnsOnOnlyWhenBothSignsAgree) {
  EXPECT_FALSE(period(0.5, 0.1));  // waiting, but nobody else busy: our own processes queue
  EXPECT_FALSE(watch_.contended());
  EXPECT_FALSE(period(0.1, 2.0));  // others busy, but we hardly wait
  EXPECT_TRUE(period(0.3, 0.6));
  EXPECT_TRUE(watch_.contended());
}

TEST_F(ContentionTest, HysteresisKeepsItOnUntilBelowTheLowerMarks) {
  ASSERT_TRUE(period(0.3, 0.6));
  EXPECT_FALSE(period(0.1, 0.3));  // below the on marks, above the off ones: stays on
  EXPECT_TRUE(watch_.contended());
  EXPECT_TRUE(period(0.04, 0.3));  // waiting fell below kWaitOff
  EXPECT_FALSE(watch_.contended());
  EXPECT_FALSE(period(0.1, 0.3));  // and the on marks apply again
  ASSERT_TRUE(period(0.3, 0.6));
  EXPECT_TRUE(period(0.3, 0.2));   // others fell below kOthersOff
}

TEST_F(ContentionTest, DueOncePerPeriod) {
  EXPECT_FALSE(watch_.due(s_.now_ns + P - 1));
  EXPECT_TRUE(watch_.due(s_.now_ns + P));
  EXPECT_TRUE(ContentionWatch(1).due(12345));  // the first sample is always due
}

TEST_F(ContentionTest, WorkersCountFromTheirOwnBaselines) {
  // A worker that waited long before this watch first saw it: its history counts once (C1).
  s_.workers.push_back({1, 600, 0, 10 * P});
  EXPECT_TRUE(period(0, 0.6));
  EXPECT_TRUE(watch_.contended());
  s_.workers[0].waited_ns += P / 100;
  EXPECT_TRUE(period(0, 0.6));  // then only its growth: 1% waited, off
  EXPECT_FALSE(watch_.contended());
  // A new process in the slot whose counter happens to be above the old one's: whole again,
  // not the difference between two processes.
  s_.workers[0] = {1, 601, 0, 10 * P + P / 100};
  EXPECT_TRUE(period(0, 0.6));
  EXPECT_TRUE(watch_.contended());
}

TEST(ContentionSampleTest, ReadsThisProcess) {
  const int32_t me = getpid();
  ContentionSample s = read_sample(77, {{2, me}, {3, 0x7ffffff0}});
  EXPECT_EQ(s.now_ns, 77u);
  EXPECT_GT(s.driver_cpu_ns, 0u);
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[0].slot, 2u);
  EXPECT_GT(s.workers[0].ran_ns, 0u);  // this thread has run
  EXPECT_EQ(s.workers[1].ran_ns, 0u);  // no such process: zeros
  EXPECT_EQ(s.workers[1].waited_ns, 0u);
}

}  // namespace
}  // namespace ember
