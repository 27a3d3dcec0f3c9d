// memory_monitor: the victim is the largest worker, the newest retriable task among those
// within 10% of it, never one below the floor; and the kernel files read sensibly here.
#include "memory_monitor.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <vector>

namespace ember {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kCapacity = 4096 * kMiB;  // floor: max(64 MiB, 1%) = 64 MiB

TEST(OomVictimTest, TheHogGoesNotTheRetriableBystander) {
  // Ray's rule alone would kill the retriable 100 MiB task again and again.
  std::vector<OomCandidate> c = {{0, 100 * kMiB, true, 50}, {1, 900 * kMiB, false, 10}};
  EXPECT_EQ(choose_oom_victim(c, kCapacity), 1);
}

TEST(OomVictimTest, AmongNearEqualsTheNewestRetriableGoes) {
  std::vector<OomCandidate> c = {{0, 1000 * kMiB, false, 90},  // the largest, not retriable
                                 {1, 950 * kMiB, true, 10},    // within 10%, retriable, old
                                 {2, 920 * kMiB, true, 20},    // within 10%, retriable, newest
                                 {3, 800 * kMiB, true, 99}};   // newer still, but not near
  EXPECT_EQ(choose_oom_victim(c, kCapacity), 2);
}

TEST(OomVictimTest, WithoutRetriableOnesTheNewestGoes) {
  std::vector<OomCandidate> c = {{0, 1000 * kMiB, false, 5}, {1, 1000 * kMiB, false, 7}};
  EXPECT_EQ(choose_oom_victim(c, kCapacity), 1);
}

TEST(OomVictimTest, SmallWorkersAreNeverChosen) {
  std::vector<OomCandidate> c = {{0, 60 * kMiB, true, 5}, {1, 10 * kMiB, true, 7}};
  EXPECT_EQ(choose_oom_victim(c, kCapacity), -1);  // pressure from outside the node
  EXPECT_EQ(choose_oom_victim({}, kCapacity), -1);
  // The floor grows with the capacity: 1% of 64 GiB is 655 MiB.
  std::vector<OomCandidate> big = {{0, 600 * kMiB, true, 5}};
  EXPECT_EQ(choose_oom_victim(big, 64 * 1024 * kMiB), -1);
  EXPECT_EQ(choose_oom_victim(big, kCapacity), 0);
}

TEST(MemoryMonitorTest, ReadsThisMachine) {
  MemorySnapshot m = read_memory(0);
  EXPECT_GT(m.capacity, 0u);
  EXPECT_LE(m.used, m.capacity);
  MemorySnapshot capped = read_memory(1 << 20);
  EXPECT_EQ(capped.capacity, uint64_t{1} << 20);
  EXPECT_GT(private_memory(getpid()), 0u);
  EXPECT_EQ(private_memory(0), 0u);
  EXPECT_EQ(private_memory(0x7ffffff0), 0u);  // no such process
}

TEST(MemoryMonitorTest, DescribesUseAndCapacity) {
  MemorySnapshot m{3 * kMiB, 4 * kMiB};
  EXPECT_NE(describe(m).find("(75%)"), std::string::npos);
}

}  // namespace
}  // namespace ember
