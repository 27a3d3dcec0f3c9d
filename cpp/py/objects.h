// objects: the Store as Python sees it: put, get, wait, and the object writes that task
// submission and task returns share.
//
// Invariants:
//  - The GIL is released around every copy that can be large and every wait; store calls that
//    only take the segment lock keep it (they are short and never wait for Python).
//  - Every wait is interruptible: it sleeps without the GIL in slices of kSignalCheckNs and runs
//    Python's signal handlers between them; an exception a handler raises ends the wait.
//  - A worker whose task waits for objects is marked blocked for the wait (its lease goes back to
//    the node so the tasks it waits for can run), and unmarked however the wait ends.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "object_io.h"
#include "store.h"

namespace ember::py_bind {

namespace py = pybind11;

/// Writes the parts serialize() made (a pickle stream, its out-of-band buffers, the ObjectRefs
/// pickled inside) as object `id`; raises the store's error if it cannot. False (nothing
/// written) only for a `meta.fulfil_only` write that finds no promise.
bool write_object(Store& store, const ObjectID& id, const py::bytes& stream,
                  const py::list& buffers, const py::list& nested, ObjectMeta meta = {});

/// Binds StoreOptions and Store (put, get, get_many, wait, ...).
void bind_store(py::module_& m);

}  // namespace ember::py_bind
