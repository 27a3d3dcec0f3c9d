// runtime_region: the task runtime's part of a store's segment, addressed the same way in every
// process (the driver's scheduler, workers, the forkserver), and the forkserver's two verbs.
//
//   [RuntimeControl][WorkerSlot x max_workers][TaskRecord x task_capacity]
//   [GroupSlot x kMaxPlacementGroups]                                        (RuntimeLayout)
//
// Invariants:
//  - The region is laid out once by the driver's scheduler (Scheduler::start) from the counts
//    it writes in RuntimeControl; every other process computes the same addresses from them.
//  - The forkserver only pops spawn requests and publishes exits (state kExited last, with
//    release, so the scheduler's acquire of the state sees the pid and the status).
#pragma once

#include <cstdint>

#include "store.h"
#include "task.h"

namespace ember {

/// The runtime region of `store`, addressed. `control` is null when the store has none.
struct RuntimeRegion {
  RuntimeControl* control = nullptr;
  WorkerSlot* slots = nullptr;
  TaskRecord* records = nullptr;
  GroupSlot* groups = nullptr;

  explicit RuntimeRegion(const Store& store) {
    control = reinterpret_cast<RuntimeControl*>(store.runtime_region());
    if (control == nullptr) return;
    RuntimeLayout layout(control->max_workers, control->task_capacity);
    auto* base = reinterpret_cast<uint8_t*>(control);
    slots = reinterpret_cast<WorkerSlot*>(base + layout.slots_at);
    records = reinterpret_cast<TaskRecord*>(base + layout.records_at);
    groups = reinterpret_cast<GroupSlot*>(base + layout.groups_at);
  }
};

/// The forkserver's side: waits up to `timeout_ms` for the next spawn request.
inline bool pop_spawn_request(const RuntimeRegion& region, SpawnRequest& req, int timeout_ms) {
  return region.control->spawn.pop_wait(req, timeout_ms);
}

/// The forkserver's side: worker `index` (process `pid`) exited with raw wait `status`.
inline void report_worker_exit(const RuntimeRegion& region, uint32_t index, int32_t pid,
                               int32_t status) {
  WorkerSlot& slot = region.slots[index];
  slot.pid.store(pid, std::memory_order_relaxed);
  slot.exit_status.store(status, std::memory_order_relaxed);
  // release: the scheduler reads pid and status after its acquire load of the state.
  slot.state.store(static_cast<uint32_t>(WorkerState::kExited), std::memory_order_release);
  ring_doorbell(region.control);
}

}  // namespace ember
