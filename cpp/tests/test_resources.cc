// ResourcePool: leases keep the accounting exact (R1), GPU ids are never handed out twice (R2),
// ending a lease twice is harmless (R3), and a request that does not fit takes nothing (R4).
#include "resources.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "runtime_test_util.h"

namespace ember {
namespace {

constexpr int64_t U = kResourceUnit;

using testing_util::req;

TEST(ResourcesTest, DefaultRequestIsExactlyOneCpu) {
  EXPECT_TRUE(is_default_request(req(1).data()));
  EXPECT_FALSE(is_default_request(req(0.5).data()));
  EXPECT_FALSE(is_default_request(req(0).data()));
  EXPECT_FALSE(is_default_request(req(1, 0, 1).data()));
  EXPECT_FALSE(is_default_request(req(1, 0.1).data()));
}

TEST(ResourcesTest, AcquireTakesAllOrNothing) {
  ResourcePool pool(req(2, 0, 1).data());
  EXPECT_FALSE(pool.try_acquire(req(1, 0, 2).data()));  // the CPU fits, the custom does not
  EXPECT_EQ(pool.available()[kResourceCPU], 2 * U);     // so nothing was taken
  EXPECT_TRUE(pool.try_acquire(req(1.5, 0, 1).data()));
  EXPECT_EQ(pool.available()[kResourceCPU], U / 2);
  EXPECT_EQ(pool.available()[2], 0);
  EXPECT_TRUE(pool.fits(req(0.5).data()));
  EXPECT_FALSE(pool.fits(req(0.5001).data()));
  EXPECT_TRUE(pool.fits(req(0).data()));  // a zero request always fits
  pool.give_back(req(1.5, 0, 1).data());
  EXPECT_EQ(pool.available()[kResourceCPU], 2 * U);
}

TEST(ResourcesTest, LeaseEndsOnceAndGivesEverythingBack) {
  ResourcePool pool(req(4, 2).data());
  Lease l;
  ASSERT_TRUE(pool.lease(l, req(1, 1).data(), /*exclusive=*/true));
  EXPECT_TRUE(l.held && l.exclusive && !l.lent);
  EXPECT_EQ(l.gpu_mask, 0b01u);
  EXPECT_EQ(pool.available()[kResourceCPU], 3 * U);
  EXPECT_EQ(pool.available()[kResourceGPU], 1 * U);
  EXPECT_EQ(pool.free_gpus(), 0b10u);
  pool.end(l);
  EXPECT_FALSE(l.held);
  EXPECT_EQ(l.gpu_mask, 0u);
  pool.end(l);  // R3: a second end changes nothing
  EXPECT_EQ(pool.available()[kResourceCPU], 4 * U);
  EXPECT_EQ(pool.available()[kResourceGPU], 2 * U);
  EXPECT_EQ(pool.free_gpus(), 0b11u);
}

TEST(ResourcesTest, LeaseThatDoesNotFitChangesNothing) {
  ResourcePool pool(req(1, 1).data());
  Lease l;
  EXPECT_FALSE(pool.lease(l, req(1, 2).data(), true));
  EXPECT_FALSE(l.held);
  EXPECT_EQ(pool.free_gpus(), 0b1u);
  EXPECT_EQ(pool.available()[kResourceCPU], U);
}

TEST(ResourcesTest, LendAndTakeBackMayOversubscribe) {
  ResourcePool pool(req(1).data());
  Lease parent, child;
  ASSERT_TRUE(pool.lease(parent, req(1).data(), false));
  EXPECT_FALSE(pool.fits(req(1).data()));
  pool.lend(parent);  // blocked in get(): its CPU goes back so the child can run
  EXPECT_TRUE(parent.lent);
  pool.lend(parent);  // twice is once
  EXPECT_EQ(pool.available()[kResourceCPU], U);
  ASSERT_TRUE(pool.lease(child, req(1).data(), false));
  pool.take_back(parent);  // runs again before the child is done: oversubscribed
  EXPECT_FALSE(parent.lent);
  EXPECT_EQ(pool.available()[kResourceCPU], -U);
  EXPECT_FALSE(pool.fits(req(0.5).data()));
  pool.end(child);
  pool.end(parent);
  EXPECT_EQ(pool.available()[kResourceCPU], U);
}

TEST(ResourcesTest, EndingALentLeaseDoesNotReturnItTwice) {
  ResourcePool pool(req(2).data());
  Lease l;
  ASSERT_TRUE(pool.lease(l, req(1).data(), false));
  pool.lend(l);
  pool.end(l);  // a blocked worker that died: its amounts were already back
  EXPECT_EQ(pool.available()[kResourceCPU], 2 * U);
}

TEST(ResourcesTest, LentLeaseKeepsItsGpuIds) {
  ResourcePool pool(req(2, 2).data());
  Lease l;
  ASSERT_TRUE(pool.lease(l, req(1, 1).data(), true));
  pool.lend(l);
  EXPECT_EQ(pool.available()[kResourceGPU], 2 * U);
  EXPECT_EQ(l.gpu_mask, 0b01u);
  EXPECT_EQ(pool.free_gpus(), 0b10u);  // R2: its process still sees GPU 0
  Lease other;
  ASSERT_TRUE(pool.lease(other, req(0, 1).data(), true));
  EXPECT_EQ(other.gpu_mask, 0b10u);  // never GPU 0 again
  pool.end(other);
  pool.end(l);
  EXPECT_EQ(pool.free_gpus(), 0b11u);
}

TEST(ResourcesTest, GpuIdsRoundUpAndGoLowestFirst) {
  ResourcePool pool(req(8, 4).data());
  EXPECT_EQ(pool.take_gpus(U / 2), 0b0001u);   // half a GPU still names one
  EXPECT_EQ(pool.take_gpus(2 * U), 0b0110u);
  pool.give_back_gpus(0b0001u);
  EXPECT_EQ(pool.take_gpus(U + 1), 0b1001u);   // 1.0001 GPUs: two ids, lowest free first
  EXPECT_EQ(pool.take_gpus(U), 0u);            // none left
  EXPECT_EQ(pool.take_gpus(0), 0u);
}

TEST(ResourcesTest, GpuIdsAreWholeGpusAtMost32) {
  EXPECT_EQ(ResourcePool(req(1, 1.5).data()).free_gpus(), 0b1u);
  EXPECT_EQ(ResourcePool(req(1, 0.5).data()).free_gpus(), 0u);
  EXPECT_EQ(ResourcePool(req(1, 32).data()).free_gpus(), ~0u);
  EXPECT_EQ(ResourcePool(req(1, 40).data()).free_gpus(), ~0u);
}

TEST(ResourcesTest, RandomLeasesKeepTheBooksBalanced) {
  // R1 and R2 after every step of a random mix of leases, lends, take-backs and ends.
  const auto totals = req(4, 3, 2);
  ResourcePool pool(totals.data());
  std::vector<Lease> leases(16);
  std::mt19937 rng(7);
  for (int step = 0; step < 20000; ++step) {
    Lease& l = leases[rng() % leases.size()];
    switch (rng() % 4) {
      case 0:
        if (!l.held) {
          auto need = req((rng() % 3) * 0.5, (rng() % 3) * 0.5, rng() % 2);
          (void)pool.lease(l, need.data(), rng() % 2 == 0);
        }
        break;
      case 1: pool.lend(l); break;
      case 2: pool.take_back(l); break;
      default: pool.end(l); break;
    }
    uint32_t ids = pool.free_gpus();
    for (uint32_t i = 0; i < kMaxResources; ++i) {
      int64_t sum = pool.available()[i];
      for (const Lease& x : leases) sum += x.held && !x.lent ? x.amounts[i] : 0;
      ASSERT_EQ(sum, totals[i]) << "resource " << i << " at step " << step;
    }
    for (const Lease& x : leases) {
      ASSERT_EQ(ids & x.gpu_mask, 0u) << "a GPU id is free and leased at step " << step;
      ids |= x.gpu_mask;
    }
    ASSERT_EQ(ids, 0b111u) << "a GPU id went missing at step " << step;
  }
}

}  // namespace
}  // namespace ember
