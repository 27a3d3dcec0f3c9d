// resources: amounts and GPU ids taken out of a pool and given back.
#include "resources.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace ember {

namespace {

/// "2" or "0.5": an amount in kResourceUnit as the user wrote it.
std::string format_units(int64_t v) {
  char buf[32];
  if (v % kResourceUnit == 0) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v / kResourceUnit));
  } else {
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v) / kResourceUnit);
  }
  return buf;
}

}  // namespace

Status check_feasible(const RuntimeControl& rc, const TaskSpec& spec) {
  for (uint32_t i = 0; i < kMaxResources; ++i) {
    if (spec.resources[i] <= rc.totals[i]) continue;
    std::string name = rc.resource_names[i][0] != 0 ? std::string(rc.resource_names[i])
                                                    : "resource " + std::to_string(i);
    return Status(StatusCode::kInvalid,
                  std::string("task ") + spec.name + " needs " + format_units(spec.resources[i]) +
                      " " + name + " but this node has " + format_units(rc.totals[i]) +
                      ": it could never run (one machine cannot grow). Lower the request, or "
                      "start ember with more, e.g. ember.init(num_cpus=..., num_gpus=..., "
                      "resources={...}).");
  }
  return Status::OK();
}

bool is_default_request(const int64_t* resources) {
  if (resources[kResourceCPU] != kResourceUnit) return false;
  for (uint32_t i = 1; i < kMaxResources; ++i) {
    if (resources[i] != 0) return false;
  }
  return true;
}

ResourcePool::ResourcePool(const int64_t* totals) {
  std::copy(totals, totals + kMaxResources, available_);
  // Whole GPUs only get ids: 1.5 GPUs is one id that tasks may share by fractions.
  const int64_t gpus = std::min<int64_t>(32, totals[kResourceGPU] / kResourceUnit);
  free_gpus_ = gpus >= 32 ? ~0u : (1u << gpus) - 1;
}

ResourcePool::ResourcePool(const int64_t* amounts, uint32_t gpu_ids) : free_gpus_(gpu_ids) {
  if (amounts != nullptr) std::copy(amounts, amounts + kMaxResources, available_);
}

bool ResourcePool::fits(const int64_t* need) const {
  for (uint32_t i = 0; i < kMaxResources; ++i) {
    if (need[i] > available_[i]) return false;
  }
  return true;
}

bool ResourcePool::try_acquire(const int64_t* need) {
  if (!fits(need)) return false;
  for (uint32_t i = 0; i < kMaxResources; ++i) available_[i] -= need[i];
  return true;
}

void ResourcePool::give_back(const int64_t* amounts) {
  for (uint32_t i = 0; i < kMaxResources; ++i) available_[i] += amounts[i];
}

uint32_t ResourcePool::take_gpus(int64_t gpus) {
  uint32_t mask = 0;
  int64_t want = (gpus + kResourceUnit - 1) / kResourceUnit;
  for (uint32_t g = 0; g < 32 && want > 0; ++g) {
    if ((free_gpus_ >> g) & 1u) {
      mask |= 1u << g;
      --want;
    }
  }
  free_gpus_ &= ~mask;
  return mask;
}

void ResourcePool::give_back_gpus(uint32_t mask) { free_gpus_ |= mask; }

bool ResourcePool::lease(Lease& lease, const int64_t* need, bool exclusive) {
  if (!try_acquire(need)) return false;
  std::copy(need, need + kMaxResources, lease.amounts);
  lease.held = true;
  lease.exclusive = exclusive;
  lease.lent = false;
  lease.gpu_mask = take_gpus(need[kResourceGPU]);
  return true;
}

void ResourcePool::end(Lease& lease) {
  if (!lease.held) return;  // R3
  if (!lease.lent) give_back(lease.amounts);
  give_back_gpus(lease.gpu_mask);
  lease = Lease{};
}

void ResourcePool::lend(Lease& lease) {
  if (!lease.held || lease.lent) return;
  give_back(lease.amounts);
  lease.lent = true;
}

void ResourcePool::take_back(Lease& lease) {
  if (!lease.held || !lease.lent) return;
  for (uint32_t i = 0; i < kMaxResources; ++i) available_[i] -= lease.amounts[i];
  lease.lent = false;
}

}  // namespace ember
