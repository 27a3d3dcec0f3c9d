// task_table: publishing and freeing task records.
#include "task_table.h"

#include <algorithm>
#include <cassert>

namespace ember {

TaskTable::TaskTable(TaskRecord* records, uint32_t capacity)
    : records_(records), capacity_(capacity), gen_(capacity, 1) {
  free_.reserve(capacity);
  for (uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);  // index 0 on top
}

std::optional<TaskRef> TaskTable::publish(const TaskSpec& spec, uint32_t gpu_mask) {
  if (free_.empty()) return std::nullopt;
  const uint32_t index = free_.back();
  free_.pop_back();
  TaskRecord& r = records_[index];
  r.spec = spec;
  r.started_ns = r.finished_ns = 0;
  r.gpu_mask = gpu_mask;
  r.worker_pid = 0;
  r.inputs_released.store(0, std::memory_order_relaxed);  // published by the claim's release
  r.failed.store(0, std::memory_order_relaxed);
  r.cancel_requested.store(0, std::memory_order_relaxed);
  const uint32_t gen = gen_[index];
  // release: the worker's acquire CAS on the claim sees the spec written above.
  r.claim.store(make_claim(gen, 0, TaskState::kQueued), std::memory_order_release);
  return TaskRef{index, gen};
}

void TaskTable::free(uint32_t index) {
  assert(std::find(free_.begin(), free_.end(), index) == free_.end() && "freed twice (T3)");
  const uint32_t gen = ++gen_[index];
  // release: a stale TaskRef's CAS (old gen) fails from now on, in every process.
  records_[index].claim.store(make_claim(gen, 0, TaskState::kFree), std::memory_order_release);
  free_.push_back(index);
}

bool TaskTable::finished_by(const TaskRef& ref, uint32_t w) const {
  const uint64_t c = claim(ref.index);
  if (claim_gen(c) != ref.gen) return false;
  if (claim_state(c) == TaskState::kDone) return true;
  // acquire: pairs with the worker's release of the flag, stored after its results' seals.
  return claim_state(c) == TaskState::kRunning && claim_worker(c) == w &&
         records_[ref.index].inputs_released.load(std::memory_order_acquire) != 0;
}

}  // namespace ember
