// refs: ObjectRef (a process's counted reference to an object) and Pin (a view's hold on a
// sealed object's bytes), as Python sees them.
//
// Invariants:
//  - An ObjectRef holds one count on its object while it lives in a process whose store is
//    open; after shutdown it holds nothing (weak store pointer), so refs that outlive
//    ember.shutdown() are harmless.
//  - A Pin keeps the object pinned and the mapping alive (shared store pointer) while any
//    memoryview or numpy array built on it lives; it unpins when the last one dies.
//  - An id's bytes are big-endian hi then lo: bytes.fromhex(ref.hex()) == ref.binary().
//  - `task` is the id of the task that makes the object (its first return: what the task's
//    get_task_id() says), the object's own id for a put or a ref rebuilt from its id alone.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "store.h"

namespace ember::py_bind {

namespace py = pybind11;

/// An id as 16 bytes, and back (ValueError unless 16 bytes).
py::bytes id_to_bytes(const ObjectID& id);
ObjectID id_from_binary(const py::bytes& b);
/// An id as 32 hex digits.
std::string id_to_hex(const ObjectID& id);

class ObjectRef {
 public:
  ObjectRef(ObjectID id, const std::shared_ptr<Store>& store, bool counted)
      : id_(id), task_(id), store_(store), counted_(counted) {}
  ObjectRef(ObjectID id, ObjectID task, const std::shared_ptr<Store>& store, bool counted)
      : id_(id), task_(task), store_(store), counted_(counted) {}
  ~ObjectRef() {
    if (!counted_) return;
    if (auto s = store_.lock()) s->release_ref(id_);
  }
  ObjectRef(const ObjectRef&) = delete;
  ObjectRef& operator=(const ObjectRef&) = delete;

  const ObjectID& id() const { return id_; }
  const ObjectID& task() const { return task_; }
  void set_task(const ObjectID& task) { task_ = task; }
  std::string hex() const { return id_to_hex(id_); }
  py::bytes binary() const { return id_to_bytes(id_); }

 private:
  ObjectID id_;
  ObjectID task_;
  std::weak_ptr<Store> store_;
  bool counted_;
};

/// Exports a pinned object's bytes through the buffer protocol (read-only).
class Pin {
 public:
  Pin(std::shared_ptr<Store> store, ObjectID id, ObjectView view)
      : store_(std::move(store)), id_(id), view_(view) {}
  ~Pin() { store_->unpin(id_); }
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;
  const ObjectView& view() const { return view_; }

 private:
  std::shared_ptr<Store> store_;
  ObjectID id_;
  ObjectView view_;
};

/// The ids of a list of ObjectRefs (TypeError for anything else).
std::vector<ObjectID> ids_of(const py::list& refs);

/// `current`, checked to be the open store `ref` lives in (NotInitializedError otherwise: the
/// node it came from was shut down).
const std::shared_ptr<Store>& store_of(const ObjectRef& ref, const std::shared_ptr<Store>& current);

/// Binds ObjectRef and _Pin.
void bind_refs(py::module_& m);

}  // namespace ember::py_bind
