// runtime: the task runtime as Python sees it: the driver's Scheduler, a worker process's
// Worker, the option structs, and the forkserver's verbs.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <vector>

#include "scheduler.h"
#include "store.h"
#include "submission.h"
#include "worker.h"

namespace ember::py_bind {

namespace py = pybind11;

/// The driver's handle on the runtime (ember._core.Scheduler): the scheduler plus the store
/// it dispatches from. Its submissions go to the scheduler.
struct DriverRuntime {
  std::shared_ptr<Store> store;
  std::unique_ptr<Scheduler> scheduler;

  const RuntimeControl& control() const { return *scheduler->control(); }
  /// A task or an actor call. Call without the GIL (the scheduler's mutex).
  Status dispatch(TaskSpec& spec, std::vector<ObjectID> deps);
  /// An actor's creation; its id. Call without the GIL.
  Result<uint32_t> create_actor(TaskSpec& spec, std::vector<ObjectID> deps,
                                const TaskOptions& options);
};

/// A worker process's handle on the runtime (ember._core.Worker): its submissions go through
/// its outbound ring (the deps travel in the spec).
struct WorkerRuntime {
  std::shared_ptr<Store> store;
  std::unique_ptr<Worker> worker;

  const RuntimeControl& control() const { return *worker->control(); }
  /// Call without the GIL (a full ring waits for the scheduler).
  Status dispatch(TaskSpec& spec, std::vector<ObjectID> deps);
  Result<uint32_t> create_actor(TaskSpec& spec, std::vector<ObjectID> deps,
                                const TaskOptions& options);
};

/// The Worker behind a `_core.Worker` object, or nullptr for None (the driver).
Worker* worker_of(const py::object& worker);

/// Binds the option structs, Scheduler, Worker and the forkserver's functions.
void bind_runtime(py::module_& m);

}  // namespace ember::py_bind
