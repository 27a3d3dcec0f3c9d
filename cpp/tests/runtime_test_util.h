// Helpers shared by the scheduler pieces' tests (task_table, worker_pool, dispatch, actors,
// resources, placement): a store whose runtime region is laid out for a number of workers and
// task records, and resource requests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "store.h"
#include "task.h"

namespace ember {
namespace testing_util {

/// A request of `cpus` and `gpus` (whole or fractional) and `custom` units of resource 2, in
/// the core's fixed point (kMaxResources amounts).
inline std::vector<int64_t> req(double cpus, double gpus = 0, double custom = 0) {
  std::vector<int64_t> r(kMaxResources, 0);
  r[kResourceCPU] = static_cast<int64_t>(cpus * kResourceUnit);
  r[kResourceGPU] = static_cast<int64_t>(gpus * kResourceUnit);
  r[2] = static_cast<int64_t>(custom * kResourceUnit);
  return r;
}

/// A 4 MiB store with a zeroed runtime region of `layout` (no processes, no prefaulter).
inline std::shared_ptr<Store> runtime_store(const RuntimeLayout& layout) {
  StoreOptions o;
  o.capacity = 4 << 20;
  o.prefault = false;
  o.runtime_bytes = layout.size;
  auto r = Store::create(o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return *r;
}

/// The store's runtime control block, its spawn ring made (as Scheduler::start does).
inline RuntimeControl* runtime_control(Store& store) {
  auto* rc = reinterpret_cast<RuntimeControl*>(store.runtime_region());
  Ring<SpawnRequest, kSpawnCapacity>::create_at(&rc->spawn);
  return rc;
}

}  // namespace testing_util
}  // namespace ember
