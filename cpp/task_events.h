// task_events: the last finished tasks (name, worker, start, end, id, how it ended), for
// ember.timeline() and the finished tasks of ember.util.state.list_tasks().
//
// Invariants
//   E1  At most `capacity` events are kept; once full, each new event replaces the oldest
//       (a ring), so a long-running node costs a bounded 40 bytes per event, never more.
//   E2  Names are interned: an event holds an index into a table of distinct names (a node
//       runs few distinct functions). A burst of one function's tasks costs one string compare
//       per event, not a hash lookup: the last name is remembered.
//   E3  A record that never started (cancelled while queued) is not an event.
//   E4  snapshot() returns events oldest first.
//
// Thread safety: none; the scheduler's lock guards it. Recording happens when the driver
// frees a DONE record (task_table.h), so a task's own path does no work for the timeline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "task.h"

namespace ember {

/// What a finished record ran.
enum class TaskKind : uint8_t { kTask = 0, kActorCall = 1, kActorCreation = 2 };

/// A finished task or actor call, for ember.timeline() and list_tasks().
struct TaskEvent {
  std::string name;
  int32_t worker_pid;
  uint64_t started_ns;   ///< CLOCK_MONOTONIC
  uint64_t finished_ns;
  ObjectID returns;      ///< its first return (the task's id)
  bool failed;           ///< it raised (TaskRecord::failed)
  TaskKind kind;
};

class TaskEvents {
 public:
  explicit TaskEvents(size_t capacity) : capacity_(capacity) {}

  /// Appends the event of finished record `r` (E1, E3).
  void record(const TaskRecord& r);
  /// Every event kept, oldest first (E4).
  std::vector<TaskEvent> snapshot() const;
  size_t size() const { return events_.size(); }

 private:
  /// 40 bytes: what the ring holds per event.
  struct Event {
    uint32_t name;        ///< the name's index, with kFailedBit and the kind in kKindShift
    int32_t worker_pid;
    uint64_t started_ns;
    uint64_t finished_ns;
    ObjectID returns;
  };
  static_assert(sizeof(Event) == 40);
  static constexpr uint32_t kFailedBit = 1u << 31;
  static constexpr uint32_t kKindShift = 29;  ///< 2 bits of TaskKind
  static constexpr uint32_t kNameMask = (1u << kKindShift) - 1;

  size_t capacity_;
  std::vector<Event> events_;
  size_t next_ = 0;  ///< where the next event goes once the ring is full
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> name_ids_;
  uint32_t last_name_ = UINT32_MAX;  ///< E2
};

}  // namespace ember
