// QueuedSpec: a TaskSpec as the scheduler keeps it while the task waits in its queue.
//
// A TaskSpec is 512 bytes (fixed-size, for the segment's rings and records); a queued task
// needs ~90. One million queued no-op tasks held 544 MB of specs; the target is 400 bytes per
// queued task for the whole node (its table entry and the caller's ObjectRef included).
//
// Invariants:
//  - The fields every pass of the scheduler reads (returns, flags, resources, name, actor,
//    parent) are members under the TaskSpec's own names, so code written against a TaskSpec
//    reads a QueuedSpec unchanged; everything else converts with `TaskSpec(q)` (lossless).
//  - `resources` and `name` point into a process-wide pool of interned values (a node runs
//    few distinct functions and resource requests) or, once the pool holds kMaxInterned
//    values, into the spec's own tail; pool entries are never freed, so the pointers stay
//    valid for the life of the process.
//  - The tail (one heap block, absent for a plain task) holds what is rarely there: the args
//    object id, max_task_retries, the nested deps, inline args, and a name or resource
//    vector the pool had no room for. Moving a QueuedSpec moves the block (pointers into it
//    stay valid); copying makes a new block and re-points them.
#pragma once

#include <cstdint>
#include <memory>

#include "task.h"

namespace ember {

class QueuedSpec {
 public:
  explicit QueuedSpec(const TaskSpec& spec);
  QueuedSpec(const QueuedSpec& o);
  QueuedSpec(QueuedSpec&& o) noexcept = default;
  QueuedSpec& operator=(const QueuedSpec& o);
  QueuedSpec& operator=(QueuedSpec&& o) noexcept = default;

  /// The full spec, as it was given.
  operator TaskSpec() const;  // NOLINT(google-explicit-constructor): reads like a TaskSpec

  ObjectID function;
  ObjectID returns;
  const int64_t* resources;  ///< kMaxResources amounts (interned, or in the tail)
  const char* name;          ///< NUL-terminated (interned, or in the tail)
  uint32_t num_returns;
  uint32_t flags;
  int32_t max_retries;
  uint32_t attempt;
  uint32_t actor;
  uint32_t parent_index;
  uint32_t parent_gen;

  /// Values the pool keeps at most (per kind); beyond that each spec carries its own.
  static constexpr size_t kMaxInterned = 4096;

 private:
  enum Has : uint8_t { kArgsId = 1, kMaxTaskRetries = 2, kOwnResources = 4, kOwnName = 8 };
  struct Layout;  // where each part of the tail is, from `has_`, num_deps_ and args_len_
  /// Points `resources` and `name` into this spec's own tail where they live there.
  void repoint(size_t name_len);

  // Declared in this order so the padding after parent_gen holds them (Pending's 128 bytes).
  uint16_t args_len_ = 0;   ///< inline args bytes
  uint8_t num_deps_ = 0;    ///< spec.deps entries (nested submissions)
  uint8_t has_ = 0;         ///< Has bits: what the tail holds
  std::unique_ptr<uint8_t[]> tail_;

 public:
  uint32_t placement_group;  ///< TaskSpec's, read by every pass (placement.h)
  int32_t bundle_index;
};

}  // namespace ember
