// NodeResources and the group slots: a group's bundles are reserved all at once or not at all
// (G2), leases go back to the pool they came from, removal neither loses nor double counts an
// amount (G1) or a GPU id (G3), and an id outlives its slot's reuse as "removed".
#include "placement.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "runtime_test_util.h"

namespace ember {
namespace {

constexpr int64_t U = kResourceUnit;

using testing_util::req;

/// A runtime control block and group slots as the segment holds them: zeroed.
class PlacementTest : public ::testing::Test {
 protected:
  PlacementTest()
      : rc_(static_cast<RuntimeControl*>(::operator new(sizeof(RuntimeControl),
                                                         std::align_val_t{64}))),
        slots_(static_cast<GroupSlot*>(::operator new(
            sizeof(GroupSlot) * kMaxPlacementGroups, std::align_val_t{64}))) {
    std::memset(static_cast<void*>(rc_), 0, sizeof(RuntimeControl));
    std::memset(static_cast<void*>(slots_), 0, sizeof(GroupSlot) * kMaxPlacementGroups);
  }
  ~PlacementTest() override {
    ::operator delete(rc_, std::align_val_t{64});
    ::operator delete(slots_, std::align_val_t{64});
  }

  uint32_t request(const std::vector<std::vector<int64_t>>& bundles,
                   GroupStrategy strategy = GroupStrategy::kPack) {
    Result<uint32_t> id = request_group(rc_, slots_, bundles, strategy);
    EXPECT_TRUE(id.ok());
    return id.ok() ? *id : 0;
  }
  int64_t node_cpus() const { return resources_.available()[kResourceCPU]; }

  std::vector<int64_t> totals_ = req(4, 2, 2);
  RuntimeControl* rc_;
  GroupSlot* slots_;
  NodeResources resources_{rc_, totals_.data(), slots_};
};

TEST_F(PlacementTest, AGroupIsReservedWholeAndItsLeasesComeFromItsBundles) {
  const uint32_t id = request({req(1), req(2, 0, 1)});
  EXPECT_EQ(group_state(slots_, id), GroupState::kPending);  // asked, not yet seen
  EXPECT_TRUE(resources_.collect().empty());
  EXPECT_EQ(group_state(slots_, id), GroupState::kCreated);
  EXPECT_NE(group_created_ns(slots_, id), 0u);
  EXPECT_EQ(node_cpus(), 1 * U);
  EXPECT_EQ(resources_.available()[2], 1 * U);

  Lease in_bundle;
  EXPECT_FALSE(resources_.lease(in_bundle, req(2).data(), Placement{id, 0}, true));  // bundle 0: 1
  ASSERT_TRUE(resources_.lease(in_bundle, req(2).data(), Placement{id, -1}, true));  // any: 1
  EXPECT_EQ(in_bundle.group, id);
  EXPECT_EQ(in_bundle.bundle, 1u);
  EXPECT_EQ(node_cpus(), 1 * U);  // the node's pool did not pay for it
  EXPECT_FALSE(resources_.fits(req(1).data(), Placement{id, 1}));
  EXPECT_TRUE(resources_.fits(req(1).data(), Placement{id, 0}));
  resources_.lend(in_bundle);  // its worker blocks: the bundle, not the node, gets it back
  EXPECT_EQ(node_cpus(), 1 * U);
  EXPECT_TRUE(resources_.fits(req(2).data(), Placement{id, 1}));
  resources_.take_back(in_bundle);
  resources_.end(in_bundle);
  EXPECT_TRUE(resources_.fits(req(2, 0, 1).data(), Placement{id, 1}));
  EXPECT_EQ(node_cpus(), 1 * U);
}

TEST_F(PlacementTest, AGroupThatDoesNotFitWaitsAndTakesNothingMeanwhile) {
  Lease busy;
  ASSERT_TRUE(resources_.lease(busy, req(3).data(), Placement{}, false));
  const uint32_t big = request({req(1), req(1)});
  const uint32_t small = request({req(1)});
  resources_.collect();
  // G2: the first does not fit whole (2 CPUs, 1 free), so it took nothing; the later one fits.
  EXPECT_EQ(group_state(slots_, big), GroupState::kPending);
  EXPECT_EQ(group_state(slots_, small), GroupState::kCreated);
  EXPECT_TRUE(resources_.any_pending());
  EXPECT_FALSE(resources_.fits(req(0).data(), Placement{big, -1}));  // not created: nothing fits
  Lease none;
  EXPECT_FALSE(resources_.lease(none, req(0).data(), Placement{big, -1}, true));
  resources_.end(busy);
  resources_.collect();  // each pass tries the pending ones again
  EXPECT_EQ(group_state(slots_, big), GroupState::kCreated);
  EXPECT_FALSE(resources_.any_pending());
  EXPECT_EQ(node_cpus(), 1 * U);
}

TEST_F(PlacementTest, RemovalGivesBackWhatIsFreeNowAndEachLeaseWhenItEnds) {
  const uint32_t id = request({req(2, 1)});
  resources_.collect();
  Lease held, lent;
  ASSERT_TRUE(resources_.lease(held, req(1, 1).data(), Placement{id, 0}, true));
  ASSERT_TRUE(resources_.lease(lent, req(1).data(), Placement{id, 0}, true));
  resources_.lend(lent);
  const uint32_t gpu = held.gpu_mask;
  EXPECT_NE(gpu, 0u);
  EXPECT_EQ(resources_.free_gpus() & gpu, 0u);  // G3: the bundle's id is not the node's
  request_removal(rc_, slots_, id);
  const std::vector<uint32_t> removed = resources_.collect();
  ASSERT_EQ(removed, std::vector<uint32_t>{id});
  EXPECT_FALSE(resources_.live(id));
  EXPECT_EQ(group_state(slots_, id), GroupState::kRemoved);
  // G1: the bundle's free CPU (the lent one) is the node's now; the held one comes with its end.
  EXPECT_EQ(node_cpus(), 3 * U);
  resources_.take_back(lent);  // its worker runs again: the node pays now
  EXPECT_EQ(node_cpus(), 2 * U);
  resources_.end(lent);
  resources_.end(held);
  EXPECT_EQ(node_cpus(), 4 * U);
  EXPECT_EQ(resources_.available()[kResourceGPU], 2 * U);
  EXPECT_EQ(resources_.free_gpus(), 0b11u);
}

TEST_F(PlacementTest, ARemovedIdStaysRemovedWhenItsSlotIsTakenAgain) {
  const uint32_t first = request({req(1)});
  resources_.collect();
  request_removal(rc_, slots_, first);
  resources_.collect();
  const uint32_t second = request({req(1)});
  resources_.collect();
  EXPECT_NE(first, second);
  EXPECT_EQ(first & 0xFF, second & 0xFF);  // the same slot, another generation
  EXPECT_EQ(group_state(slots_, first), GroupState::kRemoved);
  EXPECT_EQ(group_state(slots_, second), GroupState::kCreated);
  request_removal(rc_, slots_, first);  // late: must not touch the slot's new group
  EXPECT_TRUE(resources_.collect().empty());
  EXPECT_EQ(group_state(slots_, second), GroupState::kCreated);
}

TEST_F(PlacementTest, ARemovalAskedBeforeTheSchedulerSawTheGroupTakesNothing) {
  const uint32_t id = request({req(4)});
  request_removal(rc_, slots_, id);
  EXPECT_EQ(resources_.collect(), std::vector<uint32_t>{id});
  EXPECT_EQ(node_cpus(), 4 * U);
  EXPECT_FALSE(resources_.any_pending());
}

TEST_F(PlacementTest, StrictSpreadOnOneNodeHoldsOneBundleOnly) {
  const uint32_t one = request({req(1)}, GroupStrategy::kStrictSpread);
  const uint32_t two = request({req(1), req(1)}, GroupStrategy::kStrictSpread);
  resources_.collect();
  EXPECT_EQ(group_state(slots_, one), GroupState::kCreated);
  EXPECT_EQ(group_state(slots_, two), GroupState::kPending);  // each bundle needs its own node
  EXPECT_EQ(node_cpus(), 3 * U);
}

TEST_F(PlacementTest, BadRequestsAndAFullTableAreRefused) {
  EXPECT_FALSE(request_group(rc_, slots_, {}, GroupStrategy::kPack).ok());
  std::vector<std::vector<int64_t>> many(kMaxBundles + 1, req(0.01));
  EXPECT_FALSE(request_group(rc_, slots_, many, GroupStrategy::kPack).ok());
  for (uint32_t i = 0; i < kMaxPlacementGroups; ++i) request({req(0.01)});
  Result<uint32_t> full = request_group(rc_, slots_, {req(0.01)}, GroupStrategy::kPack);
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.status().message().find("placement groups already"), std::string::npos);
  EXPECT_EQ(rc_->group_requests.load(), uint64_t{kMaxPlacementGroups});
}

}  // namespace
}  // namespace ember
