// placement: group requests in the runtime region, and the node's pool and bundles' pools.
#include "placement.h"

#include <algorithm>

namespace ember {

namespace {

constexpr uint32_t kSlotBits = 8;
static_assert(kMaxPlacementGroups <= (1u << kSlotBits));

uint32_t slot_of(uint32_t id) { return id & ((1u << kSlotBits) - 1); }
uint32_t generation_of(uint32_t id) { return id >> kSlotBits; }

}  // namespace

Result<uint32_t> request_group(RuntimeControl* rc, GroupSlot* slots,
                               const std::vector<std::vector<int64_t>>& bundles,
                               GroupStrategy strategy) {
  if (bundles.empty() || bundles.size() > kMaxBundles) {
    return Status(StatusCode::kInvalid,
                  "a placement group has 1 to " + std::to_string(kMaxBundles) +
                      " bundles on ember, not " + std::to_string(bundles.size()));
  }
  for (uint32_t s = 0; s < kMaxPlacementGroups; ++s) {
    GroupSlot& slot = slots[s];
    uint32_t expected = static_cast<uint32_t>(GroupState::kFree);
    if (!slot.state.compare_exchange_strong(expected, static_cast<uint32_t>(GroupState::kWriting),
                                            std::memory_order_acquire)) {
      continue;
    }
    // Generation 0 is never an id's, so an id is never 0 (0: "no group" in a TaskSpec).
    uint32_t generation = slot.generation.load(std::memory_order_relaxed) + 1;
    if ((generation << kSlotBits) >> kSlotBits != generation) generation = 1;
    slot.generation.store(generation, std::memory_order_relaxed);
    slot.remove.store(0, std::memory_order_relaxed);
    slot.strategy = static_cast<uint32_t>(strategy);
    slot.num_bundles = static_cast<uint32_t>(bundles.size());
    slot.created_ns.store(0, std::memory_order_relaxed);
    slot.requested_ns = monotonic_ns();
    for (size_t b = 0; b < bundles.size(); ++b) {
      for (uint32_t i = 0; i < kMaxResources; ++i) {
        slot.bundles[b][i] = i < bundles[b].size() ? bundles[b][i] : 0;
      }
    }
    // release: the scheduler's acquire of kRequested sees the bundles (G4).
    slot.state.store(static_cast<uint32_t>(GroupState::kRequested), std::memory_order_release);
    rc->group_requests.fetch_add(1, std::memory_order_release);
    ring_doorbell(rc);
    return (generation << kSlotBits) | s;
  }
  return Status(StatusCode::kInvalid,
                "this node has " + std::to_string(kMaxPlacementGroups) +
                    " placement groups already, ember's limit: remove some "
                    "(ember.util.remove_placement_group) before making more");
}

void request_removal(RuntimeControl* rc, GroupSlot* slots, uint32_t id) {
  const uint32_t s = slot_of(id);
  if (id == 0 || s >= kMaxPlacementGroups) return;
  GroupSlot& slot = slots[s];
  if (slot.generation.load(std::memory_order_acquire) != generation_of(id)) return;
  slot.remove.store(generation_of(id), std::memory_order_release);
  rc->group_requests.fetch_add(1, std::memory_order_release);
  ring_doorbell(rc);
}

GroupState group_state(const GroupSlot* slots, uint32_t id) {
  const uint32_t s = slot_of(id);
  if (id == 0 || s >= kMaxPlacementGroups) return GroupState::kRemoved;
  const GroupSlot& slot = slots[s];
  const auto state = static_cast<GroupState>(slot.state.load(std::memory_order_acquire));
  if (slot.generation.load(std::memory_order_acquire) != generation_of(id) ||
      state == GroupState::kFree) {
    return GroupState::kRemoved;
  }
  return state == GroupState::kCreated ? GroupState::kCreated : GroupState::kPending;
}

uint64_t group_created_ns(const GroupSlot* slots, uint32_t id) {
  if (group_state(slots, id) != GroupState::kCreated) return 0;
  return slots[slot_of(id)].created_ns.load(std::memory_order_relaxed);
}

NodeResources::NodeResources(const RuntimeControl* rc, const int64_t* totals, GroupSlot* slots)
    : node_(totals), rc_(rc), slots_(slots) {}

NodeResources::Bundle::Bundle(const int64_t* amounts) : pool(nullptr, 0) {
  std::copy(amounts, amounts + kMaxResources, reserved);
}

ResourcePool* NodeResources::pool_of(const Lease& lease) {
  if (lease.group == 0) return &node_;
  auto it = groups_.find(lease.group);
  if (it == groups_.end()) return &node_;  // its group was removed: G1
  return &it->second.bundles[lease.bundle].pool;
}

bool NodeResources::fits(const int64_t* need, Placement where) const {
  if (where.group == 0) return node_.fits(need);
  auto it = groups_.find(where.group);
  if (it == groups_.end() || !it->second.created) return false;
  const std::vector<Bundle>& bundles = it->second.bundles;
  if (where.bundle >= 0) {
    return static_cast<size_t>(where.bundle) < bundles.size() &&
           bundles[where.bundle].pool.fits(need);
  }
  return std::any_of(bundles.begin(), bundles.end(),
                     [&](const Bundle& b) { return b.pool.fits(need); });
}

bool NodeResources::lease(Lease& lease, const int64_t* need, Placement where, bool exclusive) {
  if (where.group == 0) {
    if (!node_.lease(lease, need, exclusive)) return false;
    lease.group = 0;
    lease.bundle = 0;
    return true;
  }
  auto it = groups_.find(where.group);
  if (it == groups_.end() || !it->second.created) return false;
  std::vector<Bundle>& bundles = it->second.bundles;
  for (size_t b = 0; b < bundles.size(); ++b) {
    if (where.bundle >= 0 && static_cast<size_t>(where.bundle) != b) continue;
    if (!bundles[b].pool.lease(lease, need, exclusive)) continue;
    lease.group = where.group;
    lease.bundle = static_cast<uint32_t>(b);
    return true;
  }
  return false;
}

void NodeResources::end(Lease& lease) {
  if (!lease.held) return;  // R3
  pool_of(lease)->end(lease);
}

void NodeResources::lend(Lease& lease) { pool_of(lease)->lend(lease); }

void NodeResources::take_back(Lease& lease) { pool_of(lease)->take_back(lease); }

std::vector<uint32_t> NodeResources::collect() {
  std::vector<uint32_t> removed;
  const uint64_t requests =
      rc_ == nullptr ? 0 : rc_->group_requests.load(std::memory_order_acquire);
  if (requests != last_requests_) {
    last_requests_ = requests;
    for (uint32_t s = 0; s < kMaxPlacementGroups; ++s) {
      GroupSlot& slot = slots_[s];
      const auto state = static_cast<GroupState>(slot.state.load(std::memory_order_acquire));
      if (state == GroupState::kFree || state == GroupState::kWriting) continue;
      const uint32_t id = (slot.generation.load(std::memory_order_relaxed) << kSlotBits) | s;
      if (state == GroupState::kRequested) {
        Group group;
        group.slot = s;
        group.strategy = static_cast<GroupStrategy>(slot.strategy);
        for (uint32_t b = 0; b < slot.num_bundles; ++b) group.bundles.emplace_back(slot.bundles[b]);
        groups_.emplace(id, std::move(group));
        pending_.push_back(id);
        slot.state.store(static_cast<uint32_t>(GroupState::kPending), std::memory_order_release);
      }
      if (slot.remove.load(std::memory_order_acquire) == generation_of(id)) {
        remove(id);
        removed.push_back(id);
      }
    }
  }
  // G2: oldest first; one that does not fit lets later (smaller) ones try.
  for (auto it = pending_.begin(); it != pending_.end();) {
    auto g = groups_.find(*it);
    if (g != groups_.end() && reserve(g->second)) {
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  return removed;
}

bool NodeResources::reserve(Group& group) {
  // One node holds every bundle: STRICT_SPREAD (each bundle on its own node) can be met only
  // by a group of one bundle; a larger one stays pending, as on a one-node Ray cluster.
  if (group.strategy == GroupStrategy::kStrictSpread && group.bundles.size() > 1) return false;
  int64_t total[kMaxResources] = {};
  for (const Bundle& b : group.bundles) {
    for (uint32_t i = 0; i < kMaxResources; ++i) total[i] += b.reserved[i];
  }
  if (!node_.try_acquire(total)) return false;  // G2: all bundles or none
  for (Bundle& b : group.bundles) {
    b.pool = ResourcePool(b.reserved, node_.take_gpus(b.reserved[kResourceGPU]));  // G3
  }
  group.created = true;
  GroupSlot& slot = slots_[group.slot];
  slot.created_ns.store(monotonic_ns(), std::memory_order_relaxed);
  // release: a reader of kCreated sees created_ns.
  slot.state.store(static_cast<uint32_t>(GroupState::kCreated), std::memory_order_release);
  return true;
}

void NodeResources::remove(uint32_t id) {
  auto it = groups_.find(id);
  if (it == groups_.end()) return;
  Group& group = it->second;
  if (group.created) {
    // G1, G3: what the bundles hold unleased goes back now; their leases go back as they end.
    for (Bundle& b : group.bundles) {
      node_.give_back(b.pool.available());
      node_.give_back_gpus(b.pool.free_gpus());
    }
  }
  pending_.erase(std::remove(pending_.begin(), pending_.end(), id), pending_.end());
  GroupSlot& slot = slots_[group.slot];
  slot.created_ns.store(0, std::memory_order_relaxed);
  // release: the slot may be taken again (its generation then moves on: the id reads removed).
  slot.state.store(static_cast<uint32_t>(GroupState::kFree), std::memory_order_release);
  groups_.erase(it);
}

}  // namespace ember
