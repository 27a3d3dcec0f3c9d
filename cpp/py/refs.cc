// refs: ObjectRef and Pin, as Python sees them.
#include "py/refs.h"

#include <cstdio>

#include "py/errors.h"

namespace ember::py_bind {

py::bytes id_to_bytes(const ObjectID& id) {
  char buf[16];
  for (int i = 0; i < 8; ++i) {
    buf[i] = static_cast<char>(id.hi >> (56 - 8 * i));
    buf[8 + i] = static_cast<char>(id.lo >> (56 - 8 * i));
  }
  return py::bytes(buf, 16);
}

ObjectID id_from_binary(const py::bytes& b) {
  std::string s = b;
  if (s.size() != 16) {  // Ray's words, with ember's length
    throw py::value_error("ID string needs to have length 16, got " + std::to_string(s.size()));
  }
  ObjectID id;
  for (int i = 0; i < 8; ++i) {
    id.hi = (id.hi << 8) | static_cast<uint8_t>(s[i]);
    id.lo = (id.lo << 8) | static_cast<uint8_t>(s[8 + i]);
  }
  return id;
}

std::string id_to_hex(const ObjectID& id) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(id.hi),
                static_cast<unsigned long long>(id.lo));
  return buf;
}

std::vector<ObjectID> ids_of(const py::list& refs) {
  std::vector<ObjectID> ids;
  ids.reserve(refs.size());
  for (const auto& r : refs) ids.push_back(r.cast<const ObjectRef&>().id());
  return ids;
}

const std::shared_ptr<Store>& store_of(const ObjectRef& ref, const std::shared_ptr<Store>& current) {
  if (!current || current->closed() || ref.id().hi != current->node_tag()) {
    raise_status(Status(StatusCode::kClosed,
                        "ObjectRef(" + ref.hex() +
                            ") belongs to an ember node that was shut down; objects do not "
                            "outlive ember.shutdown()"));
  }
  return current;
}

void bind_refs(py::module_& m) {
  py::class_<Pin>(m, "_Pin", py::buffer_protocol()).def_buffer([](Pin& p) {
    return py::buffer_info(const_cast<uint8_t*>(p.view().data), 1,
                           py::format_descriptor<uint8_t>::format(), 1,
                           {static_cast<py::ssize_t>(p.view().size)}, {1}, /*readonly=*/true);
  });

  py::class_<ObjectRef>(m, "ObjectRef")
      .def(py::init([](const py::bytes& binary, const std::shared_ptr<Store>& store) {
             ObjectID id = id_from_binary(binary);
             const bool counted = store && !store->closed() && id.hi == store->node_tag() &&
                                  store->add_ref(id).ok();
             return std::make_unique<ObjectRef>(id, counted ? store : nullptr, counted);
           }),
           py::arg("binary"), py::arg("store"),
           "The ref of a 16-byte id: counted when the object is in `store` (None: no node).")
      .def("hex", &ObjectRef::hex, "The id as 32 hex digits.")
      .def("binary", &ObjectRef::binary, "The id as 16 bytes.")
      .def_property(
          "_task", [](const ObjectRef& r) { return id_to_bytes(r.task()); },
          [](ObjectRef& r, const py::bytes& b) { r.set_task(id_from_binary(b)); },
          "The id of the task that makes the object (16 bytes; see refs.h).")
      .def("__repr__", [](const ObjectRef& r) { return "ObjectRef(" + r.hex() + ")"; })
      .def("__hash__",
           [](const ObjectRef& r) {
             return static_cast<py::ssize_t>((r.id().lo * 0x9E3779B97F4A7C15ULL) ^ r.id().hi);
           })
      .def("__eq__",
           [](const ObjectRef& a, const py::object& b) {
             return py::isinstance<ObjectRef>(b) && a.id() == b.cast<const ObjectRef&>().id();
           })
      .def("__ne__",
           [](const ObjectRef& a, const py::object& b) {
             return !py::isinstance<ObjectRef>(b) || a.id() != b.cast<const ObjectRef&>().id();
           })
      .def_static(
          "unattached",
          [](const py::bytes& b) {
            return std::make_unique<ObjectRef>(id_from_binary(b), std::shared_ptr<Store>(), false);
          },
          py::arg("binary"),
          "A ref to `binary` that holds nothing (no node runs in this process).");
}

}  // namespace ember::py_bind
