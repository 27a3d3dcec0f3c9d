// task_table: publishing and freeing task records.
#include "task_table.h"

#include <algorithm>
#include <cassert>

#include "submission.h"

namespace ember {

TaskTable::TaskTable(Store& store, TaskRecord* records, uint32_t capacity)
    : store_(store), records_(records), capacity_(capacity), gen_(capacity, 1) {
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

void TaskTable::retire(uint32_t index) {
  release_inputs(store_, records_[index].spec);
  free(index);
}

}  // namespace ember
