// submission: a call's options and arguments made into a TaskSpec, and its input holds.
#include "submission.h"

#include <algorithm>
#include <cstring>

#include "resources.h"

namespace ember {

Result<TaskSpec> make_spec(const RuntimeControl& rc, const ObjectID& function,
                           const TaskOptions& options, const std::vector<ObjectID>& deps) {
  TaskSpec spec{};
  spec.function = function;
  spec.num_returns = options.num_returns;
  spec.max_retries = options.max_retries;
  spec.flags = options.flags;
  spec.max_calls = options.max_calls;  // an actor's creation or call overwrites the union
  spec.placement_group = options.placement_group;
  spec.bundle_index = options.bundle_index;
  if (spec.placement_group != 0) spec.flags |= kSpecPlaced;
  std::copy(options.resources.begin(), options.resources.end(), spec.resources);
  std::strncpy(spec.name, options.name.c_str(), sizeof(spec.name) - 1);
  Status st = check_feasible(rc, spec);
  if (!st.ok()) return st;
  spec.num_deps = static_cast<uint32_t>(std::min<size_t>(deps.size(), kMaxDeps));
  std::copy(deps.begin(), deps.begin() + spec.num_deps, spec.deps);
  return spec;
}

bool set_inline_args(TaskSpec& spec, std::string_view args, bool plain) {
  if (!plain || args.size() > kInlineArgs) return false;
  spec.flags |= kSpecArgsInline;
  spec.args_inline_len = static_cast<uint32_t>(args.size());
  std::memcpy(spec.args_inline, args.data(), args.size());
  return true;
}

Status reserve_returns(Store& store, TaskSpec& spec) {
  // One lock hold for the returns' promises and the task's hold on its function (the
  // RemoteFunction may be dropped before the task finishes); all or nothing.
  spec.returns = store.new_id(spec.num_returns);
  Status st = store.create_task_returns(spec.returns, spec.num_returns, spec.function,
                                        (spec.flags & kSpecStreaming) != 0);
  if (!st.ok() && has_args_object(spec)) store.release_ref(spec.args, /*mine=*/false);
  return st;
}

void hold_inputs(Store& store, const TaskSpec& spec) {
  (void)store.add_ref(spec.function, /*mine=*/false);
  if (has_args_object(spec)) (void)store.add_ref(spec.args, /*mine=*/false);
}

void release_inputs(Store& store, const TaskSpec& spec) {
  store.release_ref(spec.function, /*mine=*/false);
  if (has_args_object(spec)) store.release_ref(spec.args, /*mine=*/false);
}

}  // namespace ember
