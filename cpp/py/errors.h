// errors: the one place where a Status becomes a Python exception.
//
// ember.exceptions registers its classes at import (set_error_classes); a StatusCode maps to
// one of them by name, so the Python hierarchy (ObjectStoreFullError is both an EmberError and
// a MemoryError, ...) is defined once, in Python.
#pragma once

#include <pybind11/pybind11.h>

#include <utility>

#include "status.h"

namespace ember::py_bind {

namespace py = pybind11;

/// Raises the Python exception for `st` (not ok).
[[noreturn]] void raise_status(const Status& st);

/// Raises `st` unless it is ok.
inline void check(const Status& st) {
  if (!st.ok()) raise_status(st);
}

/// The value of `r`, or raises its Status.
template <typename T>
T unwrap(Result<T> r) {
  if (!r.ok()) raise_status(r.status());
  return std::move(r.value());
}

/// Binds set_error_classes.
void bind_errors(py::module_& m);

}  // namespace ember::py_bind
