// options: C++ option structs bound to Python as structs, built with keyword arguments.
//
// `_core.StoreOptions(capacity=1 << 30, prefault=False)` sets each field through its bound
// property: a misspelt or unknown field is an AttributeError, never silently ignored, and a new
// field is one def_readwrite line.
#pragma once

#include <pybind11/pybind11.h>

namespace ember::py_bind {

namespace py = pybind11;

/// A T with the fields `kwargs` names set (T is bound with a property per field).
template <typename T>
T from_kwargs(const py::kwargs& kwargs) {
  T value{};
  py::object view = py::cast(&value, py::return_value_policy::reference);
  for (const auto& [key, v] : kwargs) py::setattr(view, key, v);
  return value;
}

/// Binds T's constructor from keyword arguments (see from_kwargs).
template <typename T, typename... Extra>
py::class_<T, Extra...>& init_from_kwargs(py::class_<T, Extra...>& cls) {
  return cls.def(py::init([](const py::kwargs& kw) { return from_kwargs<T>(kw); }));
}

}  // namespace ember::py_bind
