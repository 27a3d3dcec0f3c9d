// errors: the one place where a Status becomes a Python exception.
#include "py/errors.h"

namespace ember::py_bind {

namespace {

/// Python classes by name, set by ember.exceptions at import (set_error_classes).
py::dict& error_classes() {
  static auto* d = new py::dict();  // leaked on purpose: outlives interpreter teardown order
  return *d;
}

const char* class_name_for(StatusCode code) {
  switch (code) {
    case StatusCode::kStoreFull:
    case StatusCode::kTableFull: return "ObjectStoreFullError";
    case StatusCode::kNotFound: return "ObjectLostError";
    case StatusCode::kClosed: return "NotInitializedError";
    case StatusCode::kInvalid: return "ValueError";
    case StatusCode::kIOError: return "OSError";
    case StatusCode::kOutOfDisk: return "OutOfDiskError";
    default: return "EmberError";
  }
}

}  // namespace

void raise_status(const Status& st) {
  const char* key = class_name_for(st.code());
  py::object cls = error_classes().contains(key)
                       ? py::object(error_classes()[key])
                       : py::reinterpret_borrow<py::object>(PyExc_RuntimeError);
  PyErr_SetString(cls.ptr(), st.message().c_str());
  throw py::error_already_set();
}

void bind_errors(py::module_& m) {
  m.def("set_error_classes", [](const py::dict& d) { error_classes() = d; }, py::arg("classes"),
        "Maps error names to the Python classes raised for them (called by ember.exceptions).");
}

}  // namespace ember::py_bind
