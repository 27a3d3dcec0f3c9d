// task_events: a bounded ring of finished tasks with interned names.
#include "task_events.h"

#include <cstring>

namespace ember {

void TaskEvents::record(const TaskRecord& r) {
  if (r.started_ns == 0) return;  // E3: cancelled before it ran
  const size_t len = strnlen(r.spec.name, sizeof r.spec.name);
  if (last_name_ >= names_.size() ||
      names_[last_name_].compare(0, std::string::npos, r.spec.name, len) != 0) {
    const std::string name(r.spec.name, len);
    auto it = name_ids_.find(name);
    if (it == name_ids_.end()) {
      it = name_ids_.emplace(name, static_cast<uint32_t>(names_.size())).first;
      names_.push_back(name);
    }
    last_name_ = it->second;
  }
  const TaskKind kind = (r.spec.flags & kSpecActorCreate) != 0   ? TaskKind::kActorCreation
                        : (r.spec.flags & kSpecActorMethod) != 0 ? TaskKind::kActorCall
                                                                 : TaskKind::kTask;
  // relaxed: the worker wrote it before its release of DONE, which the caller acquired.
  const uint32_t failed = r.failed.load(std::memory_order_relaxed) != 0 ? kFailedBit : 0;
  const Event e{last_name_ | failed | (static_cast<uint32_t>(kind) << kKindShift),
                r.worker_pid, r.started_ns, r.finished_ns, r.spec.returns};
  if (events_.size() < capacity_) {
    events_.push_back(e);
  } else if (capacity_ != 0) {
    events_[next_] = e;
    next_ = (next_ + 1) % capacity_;
  }
}

std::vector<TaskEvent> TaskEvents::snapshot() const {
  std::vector<TaskEvent> out;
  out.reserve(events_.size());
  for (size_t i = 0; i < events_.size(); ++i) {
    const Event& e = events_[(next_ + i) % events_.size()];
    out.push_back(TaskEvent{names_[e.name & kNameMask], e.worker_pid, e.started_ns,
                            e.finished_ns, e.returns, (e.name & kFailedBit) != 0,
                            static_cast<TaskKind>((e.name >> kKindShift) & 3u)});
  }
  return out;
}

}  // namespace ember
