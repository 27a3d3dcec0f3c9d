// submission: a call's options and arguments made into a TaskSpec, and the holds a task keeps
// on its inputs while it lives.
//
//   f.remote(...) ─ make_spec (feasible?) ─ args inline, or an args object ─ reserve_returns
//                                                                    └─ the scheduler / a ring
//
// Invariants:
//  - Feasibility is checked once, here, before anything is created in the store: a task the
//    node can never run leaves no object behind.
//  - A task holds one count on its function and one on its args object (when its arguments
//    are not inline) from reserve_returns until it finishes or fails for good; release_inputs
//    gives both back, exactly once, in whichever process ends the task. An actor's creation
//    spec is run again on each restart, so the scheduler takes a second pair of holds on it
//    (hold_inputs) for as long as the actor may restart.
//  - The returns are reserved last (PENDING, one count each, owned by the submitter's
//    ObjectRefs): nothing after them can fail, so a failed submission leaks no promise.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"
#include "store.h"
#include "task.h"

namespace ember {

/// The options of a task, an actor creation or an actor call, as the API sets them. Bound to
/// Python as a struct (ember._core.TaskOptions): a RemoteFunction builds it once.
struct TaskOptions {
  std::string name;                                 ///< "f", "Class.method"; logs and errors
  uint32_t num_returns = 1;
  std::array<int64_t, kMaxResources> resources{};   ///< in kResourceUnit, by the node's slots
  int32_t max_retries = 0;                          ///< -1: forever
  uint32_t flags = 0;                               ///< SpecFlags the API may set
  int32_t max_restarts = 0;                         ///< actor creations: -1 forever
  int32_t max_task_retries = 0;                     ///< actor creations: its calls' retries
  int32_t concurrency_group = 0;                    ///< actor calls: 1 + group index (0: own)
  int32_t max_calls = 0;                            ///< tasks: a fresh worker after this many
  bool detached = false;                            ///< actor creations: outlives its handles
  uint32_t placement_group = 0;                     ///< tasks, actor creations: 0 or a group id
  int32_t bundle_index = -1;                        ///< its bundle (-1: any; placement.h)
};

/// A TaskSpec for calling `function` (a task's function, or an actor's class) with `options`;
/// kInvalid, naming the task, the resource and both amounts, when the node's totals in `rc`
/// can never satisfy it. `deps` are the top-level ObjectRef arguments.
Result<TaskSpec> make_spec(const RuntimeControl& rc, const ObjectID& function,
                           const TaskOptions& options, const std::vector<ObjectID>& deps);

/// Puts pickled arguments in the spec itself when they are small and plain (no out-of-band
/// buffers, no nested refs); false if they must go in an args object instead.
bool set_inline_args(TaskSpec& spec, std::string_view args, bool plain);

/// True if the spec's arguments are in an args object the task holds.
inline bool has_args_object(const TaskSpec& spec) {
  return (spec.flags & (kSpecArgsInline | kSpecNoArgs)) == 0;
}

/// Reserves the spec's returns (fresh ids, PENDING) and takes the task's hold on its function.
/// On failure the task's hold on its args object is given back too: nothing is left.
Status reserve_returns(Store& store, TaskSpec& spec);

/// Takes one more pair of holds on a spec's inputs (an actor creation kept for restarts).
void hold_inputs(Store& store, const TaskSpec& spec);
/// Gives back a task's holds on its function and its args object.
void release_inputs(Store& store, const TaskSpec& spec);

}  // namespace ember
