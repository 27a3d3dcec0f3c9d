// Helpers shared by the scheduler pieces' tests (task_table, worker_pool, dispatch, actors): a
// store whose runtime region is laid out for a number of workers and task records.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "store.h"
#include "task.h"

namespace ember {
namespace testing_util {

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
