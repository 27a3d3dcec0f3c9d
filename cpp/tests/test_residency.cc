// Tests for ember::Residency (through the Store that owns it): the prefaulter populates a
// window past the high-water mark after a large allocation and never for small ones; the
// idle trim gives free blocks, the wilderness and emptied table pages back to the
// kernel, and a trimmed (cold) block is reused with the right bytes; closing joins both
// threads promptly.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "store.h"
#include "store_test_util.h"

namespace ember {
namespace {

using namespace testing_util;  // NOLINT: the shared helpers of the store's tests

StoreOptions options(uint64_t capacity, bool prefault, double idle_trim_s, const TempDir* dir) {
  StoreOptions o;
  o.capacity = capacity;
  o.prefault = prefault;
  o.copy_threads = 1;
  o.table_capacity = 1 << 16;  // a small table: its pages do not blur the counts
  o.idle_trim_s = idle_trim_s;
  o.spill_high_water = 1.0;  // no spilling ahead
  if (dir != nullptr) o.spill_dir = dir->path();
  return o;
}

/// True when the machine had no idle CPU lately (load average >= CPUs), so that a SCHED_IDLE
/// thread may not have run at all.
bool no_idle_cpu() {
  double load = 0;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = 0;
    std::fclose(f);
  }
  return load >= std::max(1u, std::thread::hardware_concurrency());
}

TEST(ResidencyTest, ThePrefaulterPopulatesAWindowPastTheHighWaterMark) {
  auto s = make_store(options(256 * kMiB, /*prefault=*/true, 0, nullptr));
  ASSERT_NE(s, nullptr);
  const uint64_t before = resident_bytes(*s);
  ObjectID id = s->new_id();
  put(*s, id, 4 * kMiB, 1);  // grows the heap by 4 MiB: a window of 16 MiB past it
  const bool populated = eventually([&] { return resident_bytes(*s) >= before + 20 * kMiB; },
                                    std::chrono::seconds(30));
  if (!populated && resident_bytes(*s) < before + 5 * kMiB && no_idle_cpu()) {
    GTEST_SKIP() << "the prefaulter is SCHED_IDLE and this machine had no idle CPU for 30 s";
  }
  EXPECT_TRUE(populated) << (resident_bytes(*s) - before) / kMiB << " MiB";
  EXPECT_LT(resident_bytes(*s), before + 40 * kMiB) << "a window, not the whole heap";
  EXPECT_TRUE(HasPattern(*s, id, 4 * kMiB, 1)) << "populating changes no byte";
  // The next object lands in warm pages of the window.
  ObjectID next = s->new_id();
  put(*s, next, 8 * kMiB, 2);
  EXPECT_TRUE(HasPattern(*s, next, 8 * kMiB, 2));
  EXPECT_TRUE(CheckOk(*s));
}

TEST(ResidencyTest, SmallObjectsDoNotWakeThePrefaulter) {
  auto s = make_store(options(256 * kMiB, /*prefault=*/true, 0, nullptr));
  ASSERT_NE(s, nullptr);
  const uint64_t before = resident_bytes(*s);
  std::vector<ObjectID> ids;
  for (int i = 0; i < 64; ++i) {  // 4 MiB in all, each below the 1 MiB threshold
    ids.push_back(s->new_id());
    put(*s, ids.back(), 64 << 10, static_cast<uint8_t>(i));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_LT(resident_bytes(*s), before + 6 * kMiB)
      << "no 16 MiB window for a node of small objects";
}

TEST(ResidencyTest, TheIdleTrimGivesAFreeBlockBackAndTheColdBlockIsReusedCorrectly) {
  TempDir dir;
  // Each idle period trims once: what is freed must go before the period's trim (1 s after
  // the last allocation), which leaves room for slow (sanitized) pattern checks.
  auto s = make_store(options(12 * kMiB, /*prefault=*/false, /*idle_trim_s=*/1, &dir));
  ASSERT_NE(s, nullptr);
  const ObjectID a = s->new_id(), b = s->new_id();
  put(*s, a, 8 * kMiB, 1);
  put(*s, b, 64 << 10, 2);  // after a: a's block stays a free block when a goes
  const uint64_t before = resident_bytes(*s);
  s->release_ref(a);
  EXPECT_EQ(resident_bytes(*s), before) << "freed memory stays warm until the node is idle";
  EXPECT_TRUE(eventually([&] { return resident_bytes(*s) + 7 * kMiB <= before; }))
      << "after 1 s without allocations its pages go back: "
      << (before - resident_bytes(*s)) / kMiB << " MiB given back";
  EXPECT_TRUE(HasPattern(*s, b, 64 << 10, 2)) << "a live object is never touched";
  EXPECT_TRUE(CheckOk(*s));

  // The cold block is reused (the heap does not grow) and holds what is written to it. The
  // heap has no room for c elsewhere: while the trimmer still has the block out of the free
  // lists (a loaded machine can preempt it between punch and return), c waits for it.
  const uint64_t high_water = s->stats().high_water;
  const ObjectID c = s->new_id();
  put(*s, c, 8 * kMiB, 3);
  EXPECT_EQ(s->stats().high_water, high_water);
  EXPECT_TRUE(HasPattern(*s, c, 8 * kMiB, 3));
  EXPECT_TRUE(HasPattern(*s, b, 64 << 10, 2));
  EXPECT_GE(resident_bytes(*s), before) << "its pages came back on the writer's touch";
  // Freed and trimmed again after the next idle period: each period trims once.
  s->release_ref(c);
  EXPECT_TRUE(eventually([&] { return resident_bytes(*s) + 7 * kMiB <= before; }));
  EXPECT_TRUE(CheckOk(*s));
}

TEST(ResidencyTest, TheIdleTrimGivesEmptiedTablePagesBack) {
  TempDir dir;
  auto s = make_store(options(64 * kMiB, /*prefault=*/false, /*idle_trim_s=*/1, &dir));
  ASSERT_NE(s, nullptr);
  const uint64_t empty = resident_bytes(*s);
  std::vector<ObjectID> ids;
  for (int i = 0; i < 20000; ++i) {  // 20000 entries of 64 bytes: ~300 table pages
    ids.push_back(s->new_id());
    put(*s, ids.back(), 0, 0);
  }
  const uint64_t full = resident_bytes(*s);
  ASSERT_GE(full, empty + 20000 * 64);
  for (const ObjectID& id : ids) s->release_ref(id);
  EXPECT_EQ(s->stats().num_objects, 0u);
  // The table's pages and the heap's 2.5 MiB free block go back.
  EXPECT_TRUE(eventually([&] { return resident_bytes(*s) <= empty + kMiB; }))
      << (resident_bytes(*s) - empty) / 1024 << " KiB still resident";
  // The table works on, in given-back pages too.
  const ObjectID id = s->new_id();
  put(*s, id, 100, 5);
  EXPECT_TRUE(HasPattern(*s, id, 100, 5));
  EXPECT_TRUE(CheckOk(*s));
}

TEST(ResidencyTest, TheIdleTrimGivesTheWildernessBack) {
  TempDir dir;
  auto s = make_store(options(64 * kMiB, /*prefault=*/false, /*idle_trim_s=*/1, &dir));
  ASSERT_NE(s, nullptr);
  const uint64_t before = resident_bytes(*s);
  // A copy populates whole 2 MiB chunks: a 3 MiB object leaves ~1 MiB past the high-water
  // mark populated, as the prefaulter's window would be (without depending on a SCHED_IDLE
  // thread getting a CPU).
  std::vector<uint8_t> bytes(3 * kMiB);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(1 + i * 7);
  const ObjectID id = s->new_id();
  auto w = s->create_object(id, bytes.size());
  ASSERT_TRUE(w.ok());
  s->copy_in(*w, bytes.data(), bytes.size());
  ASSERT_TRUE(s->seal(id).ok());
  ASSERT_GE(resident_bytes(*s), before + 4 * kMiB - 8192) << "two whole chunks";
  // 1 s later the wilderness goes back; the object stays.
  EXPECT_TRUE(eventually([&] { return resident_bytes(*s) <= before + 3 * kMiB + 65536; }))
      << (resident_bytes(*s) - before) / 1024 << " KiB";
  EXPECT_TRUE(HasPattern(*s, id, 3 * kMiB, 1));
  // A copy into the given-back pages brings them back on its touch (the chunk, punched only
  // in part, is still marked populated: a hint, R1) with the bytes written.
  const ObjectID next = s->new_id();
  auto w2 = s->create_object(next, kMiB / 2);
  ASSERT_TRUE(w2.ok());
  s->copy_in(*w2, bytes.data(), kMiB / 2);
  ASSERT_TRUE(s->seal(next).ok());
  EXPECT_GE(resident_bytes(*s), before + 3 * kMiB + kMiB / 2);
  EXPECT_TRUE(HasPattern(*s, next, kMiB / 2, 1));
  EXPECT_TRUE(CheckOk(*s));
}

TEST(ResidencyTest, ThePrefaulterStopsWithTheStore) {
  const auto t0 = Clock::now();
  {
    auto s = make_store(options(64 * kMiB, /*prefault=*/true, 0, nullptr));
    ASSERT_NE(s, nullptr);
    std::vector<ObjectID> ids;
    for (int i = 0; i < 5; ++i) {
      ids.push_back(s->new_id());
      put(*s, ids.back(), (i + 1) * kMiB, static_cast<uint8_t>(i));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let it wake up
    }
    for (int i = 0; i < 5; ++i) {
      auto v = s->pin(ids[i]);
      ASSERT_TRUE(v.ok());
      EXPECT_TRUE(has_pattern(v->data, v->size, static_cast<uint8_t>(i)));
      s->unpin(ids[i]);
    }
    EXPECT_TRUE(CheckOk(*s));
  }  // destroying the store joins the prefaulter thread
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));

  // Close right after creation, and with a hint outstanding.
  auto s2 = make_store(options(64 * kMiB, true, 0, nullptr));
  ASSERT_NE(s2, nullptr);
  ASSERT_TRUE(s2->create_object(s2->new_id(), 32 * kMiB).ok());
  s2->close();
  EXPECT_TRUE(s2->closed());
  s2.reset();
  make_store(options(8 * kMiB, true, 0, nullptr)).reset();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
}

TEST(ResidencyTest, ClosingJoinsThePrefaulterAndTheTrimmerPromptly) {
  TempDir dir;
  const auto t0 = Clock::now();
  for (int i = 0; i < 5; ++i) {
    auto s = make_store(options(uint64_t{1} << 30, /*prefault=*/true, 0.1, &dir));
    ASSERT_NE(s, nullptr);
    put(*s, s->new_id(), 32 * kMiB, 1);  // a 64 MiB window to populate
    const auto t1 = Clock::now();
    s->close();  // mid-window: the prefaulter stops within a 2 MiB step
    EXPECT_LT(Clock::now() - t1, std::chrono::milliseconds(500));
  }
  // A store closed right after it was made.
  make_store(options(64 * kMiB, true, 0.1, &dir)).reset();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
}

}  // namespace
}  // namespace ember
