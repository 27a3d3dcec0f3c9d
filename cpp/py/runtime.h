// runtime: the task runtime as Python sees it: the driver's Scheduler, a worker process's
// Worker, the option structs, and the forkserver's verbs.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "scheduler.h"
#include "store.h"
#include "worker.h"

namespace ember::py_bind {

namespace py = pybind11;

/// The driver's handle on the runtime (ember._core.Scheduler): the scheduler plus the store
/// it dispatches from.
struct DriverRuntime {
  std::shared_ptr<Store> store;
  std::unique_ptr<Scheduler> scheduler;
};

/// A worker process's handle on the runtime (ember._core.Worker): its submissions go through
/// its outbound ring.
struct WorkerRuntime {
  std::shared_ptr<Store> store;
  std::unique_ptr<Worker> worker;
};

/// The Worker behind a `_core.Worker` object, or nullptr for None (the driver).
Worker* worker_of(const py::object& worker);

/// Binds the option structs, Scheduler, Worker and the forkserver's functions.
void bind_runtime(py::module_& m);

}  // namespace ember::py_bind
