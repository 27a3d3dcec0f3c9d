// placement: the node's resources as the scheduler leases them: the node's pool and the
// placement groups' bundles, each bundle a pool of its own (DESIGN.md §10).
//
// Protocol
//   Any process (the driver, a task, an actor) asks for a placement group by filling a free
//   GroupSlot of the runtime region (request_group()) and asks for its removal by writing the
//   group's generation in the slot's `remove` word (request_removal(); a generation, not a
//   flag, so a late request never removes the slot's next group); both ring the scheduler. The scheduler alone
//   moves a group on (NodeResources::collect()):
//
//     request_group(): kFree ─CAS─► kWriting ──► kRequested
//     collect():       kRequested ──► kPending ──reserve()──► kCreated
//     collect():       `remove` set ──► the bundles go back to the node ──► kFree
//
//   A group's id is (generation << 8) | slot; taking a slot bumps its generation, so an id
//   whose generation is no longer its slot's names a removed group (group_state()).
//
//   A task or an actor placed in a group leases from one of its bundles (Placement: a bundle
//   index, or -1 for the first bundle that fits) and never from the node; its Lease remembers
//   the pool it came from (Lease::group, Lease::bundle), so end(), lend() and take_back() go
//   back to that pool.
//
// Invariants
//   G1  For the node: available + the amounts reserved by created groups + the held, not
//       lent leases drawn from the node (or from groups removed since) == totals; for a
//       created group's bundle: its pool's available + its held, not lent leases == what it
//       reserved. Removing a group gives its bundles' available amounts to the node, and each
//       of its leases, when it ends later, goes to the node too; so removal never double
//       counts and never loses an amount (ResourcePool's R1 in both pools).
//   G2  A group is reserved all at once or not at all (every bundle fits, or nothing is
//       taken); pending groups are tried in the order they were asked for, each pass.
//   G3  A GPU id reserved by a bundle is in that bundle's pool (free or leased), never in the
//       node's free ids; removal gives the bundle's free ids back, and its leases' ids go back
//       when they end.
//   G4  Only the scheduler thread (under mu_) writes a slot's state past kRequested and its
//       bundles' pools; a requester writes a slot only between its CAS to kWriting and its
//       release store of kRequested.
//
// Thread safety: NodeResources is guarded by the scheduler's mu_; the request functions may
// be called from any thread of any process of the node.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "resources.h"
#include "status.h"
#include "task.h"

namespace ember {

/// Ray's strategies. On one node every bundle lands on that node: PACK, SPREAD and
/// STRICT_PACK are all satisfied by it, STRICT_SPREAD only with one bundle.
enum class GroupStrategy : uint32_t { kPack = 0, kSpread = 1, kStrictPack = 2, kStrictSpread = 3 };

/// Where a task or an actor draws its resources from: the node (group 0), or bundle `bundle`
/// of group `group` (-1: the first of its bundles that fits).
struct Placement {
  uint32_t group = 0;
  int32_t bundle = -1;
};

template <typename Spec>
Placement placement_of(const Spec& spec) {
  return Placement{spec.placement_group, spec.bundle_index};
}

/// Takes a free slot of `slots` for a group of `bundles` (kMaxResources amounts each) and
/// rings the scheduler; the group's id. kInvalid for no bundle, more than kMaxBundles, or
/// when kMaxPlacementGroups groups are alive.
Result<uint32_t> request_group(RuntimeControl* rc, GroupSlot* slots,
                               const std::vector<std::vector<int64_t>>& bundles,
                               GroupStrategy strategy);
/// Asks the scheduler to remove group `id` (nothing if it is gone already).
void request_removal(RuntimeControl* rc, GroupSlot* slots, uint32_t id);
/// The state of group `id` as of now: kRemoved once it is gone, else kPending until its
/// bundles are reserved (kWriting/kRequested read as kPending), then kCreated.
GroupState group_state(const GroupSlot* slots, uint32_t id);
/// When group `id` was created (CLOCK_MONOTONIC ns); 0 unless it is created now.
uint64_t group_created_ns(const GroupSlot* slots, uint32_t id);

class NodeResources {
 public:
  /// The node's `totals` (kMaxResources amounts), no group yet; `rc` and `slots` are the
  /// runtime region's control block and group slots (null in tests that use no groups).
  NodeResources(const RuntimeControl* rc, const int64_t* totals, GroupSlot* slots);

  /// True if `need` fits now in the node, or in the placement's bundle (any bundle for -1);
  /// false for a group not created (pending or gone).
  [[nodiscard]] bool fits(const int64_t* need, Placement where) const;
  /// Draws `lease` for `need` from the node or the placement's bundle (ResourcePool::lease),
  /// remembering which; false (nothing changed) if it does not fit there now.
  [[nodiscard]] bool lease(Lease& lease, const int64_t* need, Placement where, bool exclusive);
  /// ResourcePool's verbs, on the pool the lease came from (the node's once its group is gone).
  void end(Lease& lease);
  void lend(Lease& lease);
  void take_back(Lease& lease);

  /// The node's amounts not leased nor reserved (kMaxResources; may be negative, R1).
  const int64_t* available() const { return node_.available(); }
  /// The node's GPU ids not leased nor reserved.
  uint32_t free_gpus() const { return node_.free_gpus(); }

  /// True while group `id` may still be created or is: requested, pending or created.
  bool live(uint32_t id) const { return groups_.count(id) != 0; }
  /// The scheduler's pass: registers new requests, removes the groups asked to go, and
  /// reserves pending ones that fit now (G2). Returns the ids removed in this pass.
  std::vector<uint32_t> collect();
  /// True if any group is pending (the pass must look again when resources come back).
  bool any_pending() const { return !pending_.empty(); }

 private:
  struct Bundle {
    int64_t reserved[kMaxResources] = {};
    ResourcePool pool;  ///< empty until the group is created
    explicit Bundle(const int64_t* amounts);
  };
  struct Group {
    uint32_t slot = 0;
    GroupStrategy strategy = GroupStrategy::kPack;
    bool created = false;
    std::vector<Bundle> bundles;
  };

  ResourcePool* pool_of(const Lease& lease);
  bool reserve(Group& group);
  void remove(uint32_t id);

  ResourcePool node_;
  const RuntimeControl* rc_;
  GroupSlot* slots_;
  std::unordered_map<uint32_t, Group> groups_;  ///< live groups, by id
  std::vector<uint32_t> pending_;               ///< ids of groups not created, oldest first
  uint64_t last_requests_ = 0;                  ///< RuntimeControl::group_requests seen
};

}  // namespace ember
