// module: ember._core, the private Python module of ember's C++ core. Each area binds itself
// (errors, refs, objects, runtime); the protocol facts Python needs are exported here, once.
//
// The GIL: calls that wait (get, wait, a full ring, the scheduler's mutex) release it first;
// see objects.h and runtime.cc.
#include <pybind11/pybind11.h>

#include "memory_monitor.h"
#include "object_format.h"
#include "process_title.h"
#include "py/errors.h"
#include "py/objects.h"
#include "py/refs.h"
#include "py/runtime.h"
#include "task.h"

namespace py = pybind11;

namespace {

void bind_protocol(py::module_& m) {
  using namespace ember;  // NOLINT: the names below are the protocol's
  m.attr("__version__") = EMBER_VERSION;
  m.attr("MAX_RESOURCES") = kMaxResources;
  m.attr("RESOURCE_UNIT") = kResourceUnit;
  m.attr("FLAG_ERROR") = static_cast<uint32_t>(kFlagError);
  m.attr("FLAG_RAW_MESSAGE") = static_cast<uint32_t>(kFlagRawMessage);
  m.attr("SPEC_RETRY_EXCEPTIONS") = static_cast<uint32_t>(kSpecRetryExceptions);
  m.attr("SPEC_ACTOR_CREATE") = static_cast<uint32_t>(kSpecActorCreate);
  m.attr("SPEC_ACTOR_METHOD") = static_cast<uint32_t>(kSpecActorMethod);
  m.attr("SPEC_HOLD_RESOURCES") = static_cast<uint32_t>(kSpecHoldResources);
  m.attr("SPEC_STREAMING") = static_cast<uint32_t>(kSpecStreaming);
  m.attr("SPEC_DYNAMIC") = static_cast<uint32_t>(kSpecDynamic);
  m.attr("SPEC_OUT_OF_ORDER") = static_cast<uint32_t>(kSpecOutOfOrder);
  m.attr("SPEC_CAPTURE_CHILD_TASKS") = static_cast<uint32_t>(kSpecCaptureChildTasks);
  m.attr("SPEC_PLACED") = static_cast<uint32_t>(kSpecPlaced);
  m.attr("SPEC_RENAMED_CALL") = static_cast<uint32_t>(kSpecRenamedCall);
  m.attr("SPEC_OWN_RETRIES") = static_cast<uint32_t>(kSpecOwnRetries);
  m.attr("LOG_MARKER") = kTaskLogMarker;
  py::enum_<ErrorKind>(m, "ErrorKind", py::arithmetic(),
                       "Which exception class a failure written by the core becomes.")
      .value("NONE", ErrorKind::kNone)
      .value("WORKER_CRASHED", ErrorKind::kWorkerCrashed)
      .value("TASK_CANCELLED", ErrorKind::kTaskCancelled)
      .value("OBJECT_LOST", ErrorKind::kObjectLost)
      .value("OUT_OF_MEMORY", ErrorKind::kOutOfMemory)
      .value("ACTOR_DIED", ErrorKind::kActorDied)
      .value("ACTOR_UNAVAILABLE", ErrorKind::kActorUnavailable)
      .value("PLACEMENT_GROUP_REMOVED", ErrorKind::kPlacementGroupRemoved);
  m.def(
      "memory_snapshot",
      [](uint64_t limit) {
        MemorySnapshot snap = read_memory(limit);
        return py::make_tuple(snap.capacity, snap.used);
      },
      py::arg("limit") = 0,
      "(capacity, used) bytes of the memory this node may use: the machine's, or its cgroup's "
      "if lower, or `limit` if lower still; used is what cannot be had back without a kill.");
  m.def(
      "set_process_title",
      [](const std::string& title) { return set_process_title(title); }, py::arg("title"),
      "Shows `title` as this process's command line (ps, psutil) and name (top); "
      "process_title.h.");
}

}  // namespace

// mod_gil_not_used: on a free-threaded CPython the module runs without the GIL. It holds
// because the bindings keep no mutable state of their own but the error-class map, written once
// by ember.exceptions at import before any other use; every Store, Scheduler and Worker call is
// safe from any thread in C++ (the segment's robust lock, the scheduler's mutex, the rings'
// atomics), and Python objects are only touched through pybind11's own handles. (A GIL build of
// CPython ignores it.)
PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
  m.doc() = "ember's C++ core (private): the object store and the task runtime.";
  bind_protocol(m);
  ember::py_bind::bind_errors(m);
  ember::py_bind::bind_refs(m);
  ember::py_bind::bind_store(m);
  ember::py_bind::bind_runtime(m);
}
