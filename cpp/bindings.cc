// bindings: the thin pybind11 layer that exposes the store and ObjectRef as ember._core.
//
// The one place where Status becomes a Python exception (raise_status). The GIL is released
// around every copy that can be large; store calls that only take the segment lock keep it
// (they are short and never wait for Python).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "memory_monitor.h"
#include "object_format.h"
#include "scheduler.h"
#include "store.h"
#include "worker.h"

namespace py = pybind11;
using namespace ember;  // NOLINT: the binding file names every ember type

namespace {

// --- errors ---------------------------------------------------------------------------

/// Python classes for StatusCodes, set by ember.exceptions at import (set_error_classes).
py::dict& error_classes() {
  static auto* d = new py::dict();  // leaked on purpose: outlives interpreter teardown order
  return *d;
}

[[noreturn]] void raise_status(const Status& st) {
  const char* key = "EmberError";
  switch (st.code()) {
    case StatusCode::kStoreFull:
    case StatusCode::kTableFull: key = "ObjectStoreFullError"; break;
    case StatusCode::kNotFound: key = "ObjectLostError"; break;
    case StatusCode::kClosed: key = "NotInitializedError"; break;
    case StatusCode::kInvalid: key = "ValueError"; break;
    case StatusCode::kIOError: key = "OSError"; break;
    case StatusCode::kOutOfDisk: key = "OutOfDiskError"; break;
    default: break;
  }
  py::object cls;
  if (error_classes().contains(key)) {
    cls = error_classes()[key];
  } else {
    cls = py::reinterpret_borrow<py::object>(PyExc_RuntimeError);
  }
  PyErr_SetString(cls.ptr(), st.message().c_str());
  throw py::error_already_set();
}

template <typename T>
T unwrap(Result<T> r) {
  if (!r.ok()) raise_status(r.status());
  return std::move(r.value());
}

void check(const Status& st) {
  if (!st.ok()) raise_status(st);
}

// --- ObjectRef ------------------------------------------------------------------------

/// An id as 16 bytes, big-endian hi then lo, so that bytes.fromhex(ref.hex()) == ref.binary().
py::bytes id_to_bytes(const ObjectID& id) {
  char buf[16];
  for (int i = 0; i < 8; ++i) {
    buf[i] = static_cast<char>(id.hi >> (56 - 8 * i));
    buf[8 + i] = static_cast<char>(id.lo >> (56 - 8 * i));
  }
  return py::bytes(buf, 16);
}

/// A reference to an object in the store. Holds one count on the object while it lives in a
/// process whose store is open; after shutdown it holds nothing (weak store pointer).
class ObjectRef {
 public:
  ObjectRef(ObjectID id, const std::shared_ptr<Store>& store, bool counted)
      : id_(id), store_(store), counted_(counted) {}
  ~ObjectRef() {
    if (!counted_) return;
    if (auto s = store_.lock()) s->release_ref(id_);
  }
  ObjectRef(const ObjectRef&) = delete;
  ObjectRef& operator=(const ObjectRef&) = delete;

  const ObjectID& id() const { return id_; }
  std::shared_ptr<Store> store() const { return store_.lock(); }

  std::string hex() const {
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(id_.hi),
                  static_cast<unsigned long long>(id_.lo));
    return buf;
  }
  py::bytes binary() const { return id_to_bytes(id_); }

 private:
  ObjectID id_;
  std::weak_ptr<Store> store_;
  bool counted_;
};

ObjectID id_from_binary(const py::bytes& b) {
  std::string s = b;
  if (s.size() != 16) throw py::value_error("an ObjectRef id is 16 bytes");
  ObjectID id;
  for (int i = 0; i < 8; ++i) {
    id.hi = (id.hi << 8) | static_cast<uint8_t>(s[i]);
    id.lo = (id.lo << 8) | static_cast<uint8_t>(s[8 + i]);
  }
  return id;
}

/// The store that `ref` lives in, or a clear error if that store was shut down.
std::shared_ptr<Store> store_of(const ObjectRef& ref, const std::shared_ptr<Store>& current) {
  if (!current || current->closed() || ref.id().hi != current->node_tag()) {
    raise_status(Status(StatusCode::kClosed,
                        "ObjectRef(" + ref.hex() +
                            ") belongs to an ember node that was shut down; objects do not "
                            "outlive ember.shutdown()"));
  }
  return current;
}

// --- Pin: a view's hold on a sealed object --------------------------------------------

/// Exports a pinned object's bytes through the buffer protocol (read-only). memoryviews and
/// numpy arrays built on it keep it alive; the object is unpinned when it dies.
class Pin {
 public:
  Pin(std::shared_ptr<Store> store, ObjectID id, ObjectView view)
      : store_(std::move(store)), id_(id), view_(view) {}
  ~Pin() { store_->unpin(id_); }
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;
  const ObjectView& view() const { return view_; }

 private:
  std::shared_ptr<Store> store_;  // keeps the mapping alive while a view exists
  ObjectID id_;
  ObjectView view_;
};

// --- put / get ------------------------------------------------------------------------

/// Writes one object in the layout of object_format.h: a pickle stream, its out-of-band
/// buffers and the ids of the ObjectRefs pickled inside it (which the object then holds).
/// Writes into `id` (a fresh id when null, or a PENDING task return).
void write_object(Store& store, const ObjectID& id, const py::bytes& stream,
                  const py::list& buffers, const std::vector<ObjectID>& nested, uint16_t flags,
                  bool mine = true) {
  char* stream_ptr = nullptr;
  Py_ssize_t stream_len = 0;
  PyBytes_AsStringAndSize(stream.ptr(), &stream_ptr, &stream_len);

  std::vector<py::buffer_info> infos;
  infos.reserve(buffers.size());
  for (const auto& b : buffers) {
    infos.push_back(py::reinterpret_borrow<py::buffer>(b).request());
  }
  const auto nbuf = static_cast<uint32_t>(infos.size());
  const auto nrefs = static_cast<uint32_t>(nested.size());
  ObjectLayout layout(nrefs, nbuf, static_cast<uint64_t>(stream_len));
  std::vector<BufferSpan> spans(nbuf);
  uint64_t at = layout.end_of_stream;
  for (uint32_t i = 0; i < nbuf; ++i) {
    at = align64(at);
    spans[i] = BufferSpan{at, static_cast<uint64_t>(infos[i].size * infos[i].itemsize)};
    at += spans[i].len;
  }

  uint8_t* dst = unwrap(store.create_object(id, at, nrefs > 0, mine));
  ObjectHeader h{kObjectMagic, flags, 0, nrefs, nbuf, static_cast<uint64_t>(stream_len)};
  std::memcpy(dst, &h, sizeof h);
  if (nrefs > 0) std::memcpy(dst + layout.refs_at, nested.data(), nrefs * sizeof(ObjectID));
  if (nbuf > 0) std::memcpy(dst + layout.spans_at, spans.data(), nbuf * sizeof(BufferSpan));
  std::memcpy(dst + layout.stream_at, stream_ptr, static_cast<size_t>(stream_len));
  {
    py::gil_scoped_release nogil;  // the buffers stay alive: `buffers` holds them
    for (uint32_t i = 0; i < nbuf; ++i) {
      store.copy_in(dst + spans[i].offset, static_cast<const uint8_t*>(infos[i].ptr),
                    spans[i].len);
    }
  }
  // The object's hold on each nested ref, taken before it becomes visible. A ref whose object
  // is already gone is listed but holds nothing (its release finds no entry).
  for (const ObjectID& n : nested) (void)store.add_ref(n, /*mine=*/false);
  Status st = store.seal(id);
  if (!st.ok()) {
    store.abort(id);
    raise_status(st);
  }
}

std::vector<ObjectID> ids_of(const py::list& refs) {
  std::vector<ObjectID> ids;
  ids.reserve(refs.size());
  for (const auto& r : refs) ids.push_back(r.cast<const ObjectRef&>().id());
  return ids;
}

/// put(): stores a new object and returns the ObjectRef that owns it.
std::unique_ptr<ObjectRef> put_object(const std::shared_ptr<Store>& store, const py::bytes& stream,
                                      const py::list& buffers, const py::list& nested) {
  ObjectID id = store->new_id();
  write_object(*store, id, stream, buffers, ids_of(nested), 0);
  return std::make_unique<ObjectRef>(id, store, true);
}

/// Reads an object: (pickle stream, [out-of-band buffers] or None, flags, error kind), or
/// None if it is not sealed yet (the caller waits and asks again).
/// Objects without buffers come back as bytes and are unpinned at once; otherwise the buffers
/// are read-only memoryviews on the segment that pin the object while they (or arrays built
/// on them) live.
py::object get_object(const std::shared_ptr<Store>& current, const ObjectRef& ref) {
  std::shared_ptr<Store> store = store_of(ref, current);
  Result<ObjectView> pinned = store->pin(ref.id());
  if (!pinned.ok() && pinned.status().code() == StatusCode::kNotReady) return py::none();
  ObjectView v = unwrap(std::move(pinned));
  ObjectHeader h = read_header(v.data);
  if (h.magic != kObjectMagic) {
    store->unpin(ref.id());
    raise_status(Status(StatusCode::kInvalid, "corrupt object " + ref.hex()));
  }
  ObjectLayout layout(h.nrefs, h.nbuf, h.stream_len);
  const uint8_t* stream = v.data + layout.stream_at;
  if (h.nbuf == 0) {
    py::bytes out(reinterpret_cast<const char*>(stream), h.stream_len);
    store->unpin(ref.id());
    return py::make_tuple(out, py::none(), h.flags, h.error_kind);
  }
  auto pin = py::cast(std::make_unique<Pin>(store, ref.id(), v));
  py::memoryview whole = py::memoryview(pin);
  py::list bufs;
  for (uint32_t i = 0; i < h.nbuf; ++i) {
    BufferSpan sp;
    std::memcpy(&sp, v.data + layout.spans_at + i * sizeof(BufferSpan), sizeof sp);
    bufs.append(whole[py::slice(static_cast<Py_ssize_t>(sp.offset),
                                static_cast<Py_ssize_t>(sp.offset + sp.len), 1)]);
  }
  auto s0 = static_cast<Py_ssize_t>(layout.stream_at);
  return py::make_tuple(whole[py::slice(s0, s0 + static_cast<Py_ssize_t>(h.stream_len), 1)], bufs,
                        h.flags, h.error_kind);
}

/// How long a wait sleeps without the GIL before it lets Python's signal handlers run: Ctrl-C
/// (KeyboardInterrupt), SIGALRM timeouts and a cancel's SIGINT in a task act within this.
constexpr int64_t kSignalCheckNs = 20'000'000;

/// While a worker's task waits for objects, its lease goes back to the node (the scheduler
/// lends it out), so nested tasks it waits for can run; it is taken back when the wait ends,
/// however it ends (a signal handler's exception too).
class BlockedWhileWaiting {
 public:
  explicit BlockedWhileWaiting(Worker* w) : worker_(w) {
    if (worker_ != nullptr) worker_->set_blocked(true);
  }
  ~BlockedWhileWaiting() {
    if (worker_ != nullptr) worker_->set_blocked(false);
  }
  BlockedWhileWaiting(const BlockedWhileWaiting&) = delete;
  BlockedWhileWaiting& operator=(const BlockedWhileWaiting&) = delete;

 private:
  Worker* worker_;
};

/// Waits until `num_ready` of `ids` are sealed (`ready[i]` says which), or with `errors` one of
/// them is a failure, or `timeout_ns` passes (< 0: forever). A wait that cannot end at once
/// marks `worker` (nullptr in the driver) blocked. It sleeps without the GIL in slices of
/// kSignalCheckNs and runs Python's signal handlers between them, so an exception a handler
/// raises (KeyboardInterrupt) ends the wait; the objects can be waited on again.
size_t wait_sealed(Store& store, const std::vector<ObjectID>& ids, size_t num_ready,
                   int64_t timeout_ns, bool* ready, WaitErrors* errors, Worker* worker) {
  size_t count = store.wait(ids.data(), ids.size(), num_ready, 0, ready, errors);
  if (count >= num_ready || timeout_ns == 0 || (errors != nullptr && errors->found)) return count;
  BlockedWhileWaiting blocked(worker);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int64_t slice = kSignalCheckNs;
    if (timeout_ns >= 0) {
      int64_t spent = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - start).count();
      slice = std::min(slice, std::max<int64_t>(0, timeout_ns - spent));
    }
    {
      py::gil_scoped_release nogil;
      count = store.wait(ids.data(), ids.size(), num_ready, slice, ready, errors);
    }
    if (count >= num_ready || (errors != nullptr && errors->found) || slice < kSignalCheckNs ||
        store.closed()) {
      return count;
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

int64_t timeout_ns_of(const py::object& timeout) {
  return timeout.is_none() ? -1 : static_cast<int64_t>(timeout.cast<double>() * 1e9);
}

/// ember.wait(): a list of booleans, one per ref, saying which are sealed.
py::list wait_objects(Store& store, const py::list& refs, size_t num_ready, py::object timeout,
                      Worker* worker) {
  std::vector<ObjectID> ids = ids_of(refs);
  std::unique_ptr<bool[]> ready(new bool[ids.size()]());
  wait_sealed(store, ids, num_ready, timeout_ns_of(timeout), ready.get(), nullptr, worker);
  py::list out;
  for (size_t i = 0; i < ids.size(); ++i) out.append(ready[i]);
  return out;
}

bool is_failure(const py::object& part) {
  return !part.is_none() &&
         (part.cast<py::tuple>()[2].cast<uint32_t>() & kFlagError) != 0;
}

/// ember.get(): the parts of each object (as get_object), in one call: it fetches what is
/// sealed, waits for the rest and fetches them as they are sealed. It returns early, with None
/// for what is missing, when a fetched object is a failure (Ray raises it without waiting for
/// the others) or when `timeout` seconds pass.
py::list get_objects(const std::shared_ptr<Store>& store, const py::list& refs,
                     py::object timeout, Worker* worker) {
  const size_t n = refs.size();
  py::list parts(n);
  std::vector<size_t> missing;
  bool failed = false;
  for (size_t i = 0; i < n; ++i) {
    py::object p = get_object(store, refs[i].cast<const ObjectRef&>());
    failed = failed || is_failure(p);
    if (p.is_none()) missing.push_back(i);
    parts[i] = std::move(p);
  }
  const int64_t timeout_ns = timeout_ns_of(timeout);
  const auto start = std::chrono::steady_clock::now();
  while (!missing.empty() && !failed) {
    int64_t left = timeout_ns;
    if (timeout_ns >= 0) {
      int64_t spent = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - start).count();
      left = std::max<int64_t>(0, timeout_ns - spent);
    }
    std::vector<ObjectID> ids;
    ids.reserve(missing.size());
    for (size_t i : missing) ids.push_back(refs[i].cast<const ObjectRef&>().id());
    std::unique_ptr<bool[]> ready(new bool[ids.size()]());
    WaitErrors errors;
    size_t count = wait_sealed(*store, ids, ids.size(), left, ready.get(), &errors, worker);
    std::vector<size_t> still;
    for (size_t k = 0; k < missing.size(); ++k) {
      const size_t i = missing[k];
      if (ready[k]) parts[i] = get_object(store, refs[i].cast<const ObjectRef&>());
      if (parts[i].is_none()) {
        still.push_back(i);  // not sealed yet, or spilled and being restored by another process
      } else {
        failed = failed || is_failure(parts[i]);
      }
    }
    missing.swap(still);
    if (count < ids.size() && !errors.found) break;  // timed out (or the store closed)
  }
  return parts;
}

// --- tasks ----------------------------------------------------------------------------

/// The part of a submission that is the same from the driver and from a worker.
struct Submission {
  TaskSpec spec{};
  std::vector<ObjectID> deps;
};

/// Builds a TaskSpec; checks feasibility before anything is created in the store, then
/// writes the arguments (inline when small and plain, else as an object the task holds).
Submission prepare(Store& store, const RuntimeControl& rc, const ObjectRef& function,
                   const std::string& name, uint32_t num_returns, const std::vector<int64_t>& resources,
                   int32_t max_retries, uint32_t flags, const py::object& args_stream,
                   const py::list& args_buffers, const py::list& args_nested, const py::list& deps,
                   uint32_t actor = 0) {
  Submission sub;
  TaskSpec& spec = sub.spec;
  spec.function = function.id();
  spec.actor = actor;
  spec.num_returns = num_returns;
  spec.max_retries = max_retries;
  spec.flags = flags;
  for (size_t i = 0; i < resources.size() && i < kMaxResources; ++i) spec.resources[i] = resources[i];
  std::strncpy(spec.name, name.c_str(), sizeof(spec.name) - 1);
  check(check_feasible(rc, spec));
  sub.deps = ids_of(deps);
  spec.num_deps = static_cast<uint32_t>(std::min<size_t>(sub.deps.size(), kMaxDeps));
  std::copy(sub.deps.begin(), sub.deps.begin() + spec.num_deps, spec.deps);

  if (args_stream.is_none()) {
    spec.flags |= kSpecNoArgs;
  } else {
    auto stream = py::reinterpret_borrow<py::bytes>(args_stream);
    std::string_view view = stream;
    if (args_buffers.empty() && args_nested.empty() && view.size() <= kInlineArgs) {
      spec.flags |= kSpecArgsInline;
      spec.args_inline_len = static_cast<uint32_t>(view.size());
      std::memcpy(spec.args_inline, view.data(), view.size());
    } else {
      spec.args = store.new_id();
      // The task's hold, not this process's: the worker that runs it releases it.
      write_object(store, spec.args, stream, args_buffers, ids_of(args_nested), 0, false);
    }
  }
  // Reserve the returns last: nothing above can fail after they exist.
  spec.returns = store.new_id(num_returns);
  Status st = store.create_pending(spec.returns, num_returns);
  if (!st.ok()) {
    if ((spec.flags & (kSpecArgsInline | kSpecNoArgs)) == 0) store.release_ref(spec.args, false);
    raise_status(st);
  }
  // The task holds its function until it finishes (the RemoteFunction may be dropped first).
  check(store.add_ref(spec.function, /*mine=*/false));
  return sub;
}

py::list return_refs(const std::shared_ptr<Store>& store, const TaskSpec& spec) {
  py::list refs;
  for (uint32_t i = 0; i < spec.num_returns; ++i) {
    refs.append(std::make_unique<ObjectRef>(ObjectID{spec.returns.hi, spec.returns.lo + i}, store,
                                            true));
  }
  return refs;
}

/// The driver's handle on the runtime: the scheduler plus the store it dispatches from.
struct DriverRuntime {
  std::shared_ptr<Store> store;
  std::unique_ptr<Scheduler> scheduler;

  const RuntimeControl& control() const { return *scheduler->control(); }
  Status dispatch(Submission& sub) {
    if ((sub.spec.flags & kSpecActorMethod) != 0) {
      scheduler->submit_actor_call(sub.spec, std::move(sub.deps));
      return Status::OK();
    }
    return scheduler->submit(sub.spec, std::move(sub.deps));
  }
};

/// A worker's handle on the runtime: its submissions go through its outbound ring.
struct WorkerRuntime {
  std::shared_ptr<Store> store;
  std::unique_ptr<Worker> worker;

  const RuntimeControl& control() const { return *worker->control(); }
  Status dispatch(Submission& sub) {
    worker->stamp_parent(sub.spec);
    py::gil_scoped_release nogil;  // a full ring waits for the scheduler
    return worker->submit(sub.spec);
  }
};

/// The worker behind a Python `Worker` object, or nullptr for None (the driver).
Worker* worker_of(const py::object& worker) {
  return worker.is_none() ? nullptr : worker.cast<WorkerRuntime&>().worker.get();
}

/// f.remote() from the driver or a worker: the returns' ObjectRefs.
template <typename Runtime>
py::list submit_task(Runtime& rt, const ObjectRef& function, const std::string& name,
                     uint32_t num_returns, const std::vector<int64_t>& resources,
                     int32_t max_retries, uint32_t flags, const py::object& args_stream,
                     const py::list& args_buffers, const py::list& args_nested,
                     const py::list& deps) {
  Submission sub = prepare(*rt.store, rt.control(), function, name, num_returns, resources,
                           max_retries, flags, args_stream, args_buffers, args_nested, deps);
  py::list refs = return_refs(rt.store, sub.spec);
  check(rt.dispatch(sub));
  return refs;
}

/// handle.method.remote() from the driver or a worker.
template <typename Runtime>
py::list submit_actor_call(Runtime& rt, uint32_t actor, const ObjectRef& cls,
                           const std::string& name, uint32_t num_returns,
                           const py::object& args_stream, const py::list& args_buffers,
                           const py::list& args_nested, const py::list& deps) {
  Submission sub = prepare(*rt.store, rt.control(), cls, name, num_returns, {}, 0,
                           kSpecActorMethod, args_stream, args_buffers, args_nested, deps, actor);
  py::list refs = return_refs(rt.store, sub.spec);
  check(rt.dispatch(sub));
  return refs;
}

/// What a worker needs to run a task: a tuple, so Python reads it in one call.
py::tuple task_info(const TaskRecord& r) {
  const TaskSpec& s = r.spec;
  py::object args = py::none();
  if ((s.flags & kSpecArgsInline) != 0) {
    args = py::bytes(reinterpret_cast<const char*>(s.args_inline), s.args_inline_len);
  } else if ((s.flags & kSpecNoArgs) == 0) {
    args = id_to_bytes(s.args);
  }
  return py::make_tuple(id_to_bytes(s.function), std::string(s.name), s.num_returns, args,
                        (s.flags & kSpecArgsInline) != 0, s.attempt, s.max_retries,
                        (s.flags & kSpecRetryExceptions) != 0, r.gpu_mask, id_to_bytes(s.returns),
                        s.flags, s.actor);
}

py::dict stats_dict(Store& s) {
  StoreStats st = s.stats();
  py::dict d;
  d["capacity"] = st.capacity;
  d["used_bytes"] = st.used_bytes;
  d["num_objects"] = st.num_objects;
  d["high_water"] = st.high_water;
  d["largest_free"] = st.largest_free;
  d["table_capacity"] = st.table_capacity;
  d["recoveries"] = st.recoveries;
  d["spilled_objects"] = st.spilled_objects;
  d["spilled_bytes"] = st.spilled_bytes;
  d["spills_total"] = st.spills_total;
  d["restores_total"] = st.restores_total;
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "ember's C++ core (private): the shared-memory object store.";
  m.attr("__version__") = EMBER_VERSION;

  m.def("set_error_classes", [](py::dict d) { error_classes() = d; },
        "Maps error names to the Python classes raised for them (called by ember.exceptions).");

  py::class_<Store, std::shared_ptr<Store>>(m, "Store")
      .def_static(
          "create",
          [](uint64_t capacity, uint64_t table_capacity, bool prefault, unsigned copy_threads,
             uint64_t runtime_bytes, uint32_t ledger_clients, std::string spill_dir,
             double spill_high_water, double idle_trim_s) {
            StoreOptions o;
            o.spill_dir = std::move(spill_dir);
            o.spill_high_water = spill_high_water;
            o.idle_trim_s = idle_trim_s;
            o.runtime_bytes = runtime_bytes;
            o.ledger_clients = ledger_clients;
            o.capacity = capacity;
            o.table_capacity = table_capacity;
            o.prefault = prefault;
            o.copy_threads = copy_threads;
            return unwrap(Store::create(o));
          },
          py::arg("capacity"), py::arg("table_capacity") = 0, py::arg("prefault") = true,
          py::arg("copy_threads") = 0, py::arg("runtime_bytes") = 0, py::arg("ledger_clients") = 0,
          py::arg("spill_dir") = "", py::arg("spill_high_water") = 0.8,
          py::arg("idle_trim_s") = 10.0,
          "Creates a node's store in a new memfd.")
      .def_static(
          "attach", [](int fd) { return unwrap(Store::attach(fd)); }, py::arg("fd"),
          "Attaches to the store of the segment fd inherited from the driver.")
      .def_property_readonly("fd", &Store::fd)
      .def_property_readonly("closed", &Store::closed)
      .def_property_readonly("node_tag", &Store::node_tag)
      .def_property_readonly("segment_range",
                             [](const Store& s) {
                               auto b = reinterpret_cast<uintptr_t>(s.segment().base());
                               return py::make_tuple(b, b + s.segment().size());
                             })
      .def("stats", &stats_dict)
      .def("check", [](Store& s) { check(s.check()); })
      .def("close", &Store::close)
      .def("put", &put_object, py::arg("stream"), py::arg("buffers"), py::arg("nested"))
      .def(
          "put_unowned",
          [](Store& store, const py::bytes& id, const py::bytes& stream, const py::list& buffers) {
            // An object at an id the caller chose (the actor-name registry), whose one count
            // belongs to no process: it stays when its writer exits, until release_unowned.
            // EmberError if one is there already.
            write_object(store, id_from_binary(id), stream, buffers, {}, 0, /*mine=*/false);
          },
          py::arg("id"), py::arg("stream"), py::arg("buffers"))
      .def(
          "release_unowned",
          [](Store& store, const py::bytes& id) { store.release_ref(id_from_binary(id), false); },
          py::arg("id"))
      .def("get", &get_object, py::arg("ref"))
      .def(
          "get_many",
          [](const std::shared_ptr<Store>& s, const py::list& refs, py::object timeout,
             py::object worker) {
            return get_objects(s, refs, std::move(timeout), worker_of(worker));
          },
          py::arg("refs"), py::arg("timeout"), py::arg("worker") = py::none())
      .def(
          "wait",
          [](Store& s, const py::list& refs, size_t num_ready, py::object timeout,
             py::object worker) {
            return wait_objects(s, refs, num_ready, std::move(timeout), worker_of(worker));
          },
          py::arg("refs"), py::arg("num_ready"), py::arg("timeout"),
          py::arg("worker") = py::none())
      .def("named_id",
           [](const Store& s, uint64_t key) {
             return id_to_bytes(ObjectID{s.node_tag(), key | kNamedIdBit});
           },
           py::arg("key"),
           "The id of an object of this node chosen by name (`key`), never one new_id() gives.")
      .def("ref_from_binary",
           [](const std::shared_ptr<Store>& s, const py::bytes& b) {
             ObjectID id = id_from_binary(b);
             bool counted = id.hi == s->node_tag() && s->add_ref(id).ok();
             return std::make_unique<ObjectRef>(id, s, counted);
           })
      .def("contains", [](Store& s, const ObjectRef& r) { return s.is_sealed(r.id()); })
      .def("exists", [](Store& s, const ObjectRef& r) { return s.contains(r.id()); },
           "True if the object is in the store in any state (promised, being written, sealed).")
      .def("list_objects",
           [](Store& s) {
             static const char* kStates[] = {"EMPTY",     "CREATED", "SEALED",
                                             "TOMBSTONE", "PENDING", "SPILLED"};
             py::list out;
             for (const Store::ObjectInfo& o : s.list_objects()) {
               py::dict d;
               d["object_id"] = ObjectRef(o.id, nullptr, false).hex();
               d["state"] = kStates[static_cast<uint32_t>(o.state) % 6];
               d["size"] = o.size;
               d["ref_count"] = o.refs;
               d["pin_count"] = o.pins;
               d["owner_pid"] = o.owner_pid;
               py::dict holders;
               for (auto& [client, n] : o.holders) holders[py::int_(client - 1)] = n;
               d["worker_holders"] = holders;
               out.append(d);
             }
             return out;
           })
      .def("debug_half_write",
           [](const std::shared_ptr<Store>& s, uint64_t nbytes) {
             // Test hook: an object created and never sealed, as a process killed mid-write
             // leaves it.
             ObjectID id = s->new_id();
             std::memset(unwrap(s->create_object(id, nbytes)), 0xAB, nbytes);
             return ObjectRef(id, s, false).hex();
           })
      .def("debug_die_holding_lock",
           [](Store& s) {
             py::gil_scoped_release nogil;
             s.debug_die_holding_lock();
           });

  m.def("runtime_bytes", [](uint32_t max_workers, uint32_t task_capacity) {
    return RuntimeLayout(max_workers, task_capacity).size;
  });
  m.def(
      "memory_snapshot",
      [](uint64_t limit) {
        MemorySnapshot snap = read_memory(limit);
        return py::make_tuple(snap.capacity, snap.used);
      },
      py::arg("limit") = 0,
      "(capacity, used) bytes of the memory this node may use: the machine's, or its cgroup's "
      "if lower, or `limit` if lower still; used is what cannot be had back without a kill.");
  py::enum_<ErrorKind>(m, "ErrorKind", py::arithmetic(),
                       "Which exception class a failure written by the core becomes.")
      .value("NONE", ErrorKind::kNone)
      .value("WORKER_CRASHED", ErrorKind::kWorkerCrashed)
      .value("TASK_CANCELLED", ErrorKind::kTaskCancelled)
      .value("OBJECT_LOST", ErrorKind::kObjectLost)
      .value("OUT_OF_MEMORY", ErrorKind::kOutOfMemory)
      .value("ACTOR_DIED", ErrorKind::kActorDied);
  m.attr("LOG_MARKER") = kTaskLogMarker;
  m.attr("MAX_RESOURCES") = kMaxResources;
  m.attr("RESOURCE_UNIT") = kResourceUnit;
  m.attr("FLAG_ERROR") = static_cast<uint32_t>(kFlagError);
  m.attr("SPEC_RETRY_EXCEPTIONS") = static_cast<uint32_t>(kSpecRetryExceptions);
  m.attr("SPEC_ACTOR_CREATE") = static_cast<uint32_t>(kSpecActorCreate);
  m.attr("SPEC_ACTOR_METHOD") = static_cast<uint32_t>(kSpecActorMethod);
  m.attr("SPEC_HOLD_RESOURCES") = static_cast<uint32_t>(kSpecHoldResources);

  py::class_<DriverRuntime>(m, "Scheduler")
      .def(py::init([](std::shared_ptr<Store> store, std::vector<int64_t> totals,
                       std::vector<std::string> names, uint32_t num_cpus, uint32_t max_workers,
                       uint32_t task_capacity, std::string log_dir, double memory_threshold,
                       uint64_t memory_limit, uint32_t oom_retry_delay_ms) {
             SchedulerConfig cfg;
             cfg.memory_threshold = memory_threshold;
             cfg.memory_limit = memory_limit;
             cfg.oom_retry_delay_ms = oom_retry_delay_ms;
             for (size_t i = 0; i < totals.size() && i < kMaxResources; ++i) cfg.totals[i] = totals[i];
             cfg.names = std::move(names);
             cfg.num_cpus = num_cpus;
             cfg.max_workers = max_workers;
             cfg.task_capacity = task_capacity;
             cfg.log_dir = std::move(log_dir);
             auto rt = std::make_unique<DriverRuntime>();
             rt->store = store;
             rt->scheduler = std::make_unique<Scheduler>(store, std::move(cfg));
             return rt;
           }),
           py::arg("store"), py::arg("totals"), py::arg("names"), py::arg("num_cpus"),
           py::arg("max_workers"), py::arg("task_capacity"), py::arg("log_dir"),
           py::arg("memory_threshold") = 0.95, py::arg("memory_limit") = 0,
           py::arg("oom_retry_delay_ms") = 1000)
      .def("start", [](DriverRuntime& rt) { rt.scheduler->start(); })
      .def("stop",
           [](DriverRuntime& rt) {
             py::gil_scoped_release nogil;
             rt.scheduler->stop();
           })
      .def("submit", &submit_task<DriverRuntime>)
      .def("stats",
           [](DriverRuntime& rt) {
             SchedulerStats st = rt.scheduler->stats();
             py::dict d;
             d["queued"] = st.queued;
             d["dispatched"] = st.dispatched;
             d["direct"] = st.direct;
             d["stolen"] = st.stolen;
             d["retried"] = st.retried;
             d["failed"] = st.failed;
             d["oom_kills"] = st.oom_kills;
             d["workers_alive"] = st.workers_alive;
             d["workers_started"] = st.workers_started;
             d["cpus_contended"] = st.cpus_contended;
             d["available"] = std::vector<int64_t>(st.available, st.available + kMaxResources);
             return d;
           })
      .def("worker_pids", [](DriverRuntime& rt) { return rt.scheduler->worker_pids(); })
      .def("actors",
           [](DriverRuntime& rt) {
             py::list out;
             for (const auto& a : rt.scheduler->actors()) {
               py::dict d;
               d["actor_id"] = a.id;
               d["class_name"] = a.class_name;
               d["state"] = a.state;
               d["pid"] = a.pid;
               d["death_cause"] = a.death;
               d["pending_calls"] = a.pending_calls;
               out.append(d);
             }
             return out;
           })
      .def("tasks",
           [](DriverRuntime& rt) {
             py::list out;
             for (const auto& t : rt.scheduler->tasks()) {
               py::dict d;
               d["name"] = t.name;
               d["task_id"] = ObjectRef(t.returns, nullptr, false).hex();
               d["state"] = t.state;
               d["worker_pid"] = t.worker_pid;
               d["running_s"] = static_cast<double>(t.running_ns) / 1e9;
               out.append(d);
             }
             return out;
           })
      .def("task_events",
           [](DriverRuntime& rt) {
             py::list out;
             for (const auto& e : rt.scheduler->task_events()) {
               out.append(py::make_tuple(e.name, e.worker_pid, e.started_ns, e.finished_ns));
             }
             return out;
           })
      .def("busy", [](DriverRuntime& rt) { return rt.scheduler->busy(); })
      .def("create_actor",
           [](DriverRuntime& rt, const ObjectRef& cls, const std::string& name,
              const std::vector<int64_t>& resources, uint32_t flags, const py::object& args_stream,
              const py::list& args_buffers, const py::list& args_nested, const py::list& deps,
              int32_t max_restarts, int32_t max_task_retries, bool detached) {
             Submission sub = prepare(*rt.store, *rt.scheduler->control(), cls, name, 1, resources,
                                      0, flags, args_stream, args_buffers, args_nested, deps);
             py::list refs = return_refs(rt.store, sub.spec);
             uint32_t id = unwrap(rt.scheduler->create_actor(sub.spec, std::move(sub.deps),
                                                             max_restarts, max_task_retries,
                                                             detached));
             return py::make_tuple(id, refs[0]);
           })
      .def("submit_actor", &submit_actor_call<DriverRuntime>)
      .def("kill_actor", [](DriverRuntime& rt, uint32_t actor, bool no_restart) {
        rt.scheduler->kill_actor(actor, no_restart);
      })
      .def("actor_alive", [](DriverRuntime& rt, uint32_t actor) {
        std::string why;
        bool alive = rt.scheduler->actor_alive(actor, &why);
        return py::make_tuple(alive, why);
      })
      .def("cancel", [](DriverRuntime& rt, const ObjectRef& ref, bool force, bool recursive) {
        return rt.scheduler->cancel(ref.id(), force, recursive);
      });

  py::class_<WorkerRuntime>(m, "Worker")
      .def(py::init([](std::shared_ptr<Store> store, uint32_t index) {
        auto rt = std::make_unique<WorkerRuntime>();
        store->set_client(index + 1);  // its ledger: released by the driver if it dies
        rt->store = store;
        rt->worker = std::make_unique<Worker>(store, index);
        return rt;
      }))
      .def("announce", [](WorkerRuntime& rt, int32_t pid) { rt.worker->announce(pid); })
      .def("next_task",
           [](WorkerRuntime& rt, int timeout_ms) {
             py::gil_scoped_release nogil;
             return rt.worker->next_task(timeout_ms);
           })
      .def("task_info", [](WorkerRuntime& rt, uint32_t index) {
        return task_info(rt.worker->record(index));
      })
      .def("put_return",
           [](WorkerRuntime& rt, uint32_t index, uint32_t i, const py::bytes& stream,
              const py::list& buffers, const py::list& nested, bool is_error) {
             const TaskSpec& s = rt.worker->record(index).spec;
             ObjectID id{s.returns.hi, s.returns.lo + i};
             write_object(*rt.store, id, stream, buffers, ids_of(nested),
                          is_error ? uint16_t{kFlagError} : uint16_t{0});
           })
      .def("finish",
           [](WorkerRuntime& rt, uint32_t index) {
             const TaskSpec& s = rt.worker->record(index).spec;
             if ((s.flags & (kSpecArgsInline | kSpecNoArgs)) == 0) {
               rt.store->release_ref(s.args, /*mine=*/false);  // the task's holds
             }
             rt.store->release_ref(s.function, /*mine=*/false);
             rt.worker->finish(index);
           })
      .def("submit", &submit_task<WorkerRuntime>)
      .def("set_blocked", [](WorkerRuntime& rt, bool b) { rt.worker->set_blocked(b); })
      .def("mark_exit_intended", [](WorkerRuntime& rt) { rt.worker->mark_exit_intended(); })
      .def("current_task", [](WorkerRuntime& rt) { return rt.worker->current(); })
      .def("submit_actor", &submit_actor_call<WorkerRuntime>)
      .def("create_actor",
           [](WorkerRuntime& rt, const ObjectRef& cls, const std::string& name,
              const std::vector<int64_t>& resources, uint32_t flags, const py::object& args_stream,
              const py::list& args_buffers, const py::list& args_nested, const py::list& deps,
              int32_t max_restarts, int32_t max_task_retries, bool detached) {
             // The id is ours to take, so the handle exists at once; the scheduler reads the
             // creation from our ring before any call made on the handle (see
             // Scheduler::collect_submissions).
             Submission sub = prepare(*rt.store, rt.control(), cls, name, 1, resources,
                                      max_restarts, flags, args_stream, args_buffers, args_nested,
                                      deps);
             auto* rc = const_cast<RuntimeControl*>(&rt.control());
             sub.spec.actor = rc->next_actor.fetch_add(1, std::memory_order_relaxed);
             sub.spec.flags |= kSpecActorCreate | (detached ? kSpecDetached : 0u);
             sub.spec.max_task_retries = max_task_retries;
             py::list refs = return_refs(rt.store, sub.spec);
             check(rt.dispatch(sub));
             return py::make_tuple(sub.spec.actor, refs[0]);
           })
      .def("kill_actor", [](WorkerRuntime& rt, uint32_t actor, bool no_restart) {
        TaskSpec spec{};
        spec.actor = actor;
        spec.flags = kSpecActorKill;
        spec.max_retries = no_restart ? 1 : 0;
        Status st;
        {
          py::gil_scoped_release nogil;  // a full ring waits for the scheduler
          st = rt.worker->submit(spec);
        }
        check(st);
      });

  // The forkserver's view: spawn requests in, worker exits out.
  m.def("pop_spawn", [](const std::shared_ptr<Store>& store, int timeout_ms) -> py::object {
    auto* rc = reinterpret_cast<RuntimeControl*>(store->runtime_region());
    SpawnRequest req{};
    bool got;
    {
      py::gil_scoped_release nogil;
      got = rc->spawn.pop_wait(req, timeout_ms);
    }
    if (!got) return py::none();
    return py::make_tuple(req.slot, req.generation, req.actor != 0);
  });
  m.def("report_exit", [](const std::shared_ptr<Store>& store, uint32_t index, int32_t pid,
                          int32_t status) {
    auto* rc = reinterpret_cast<RuntimeControl*>(store->runtime_region());
    RuntimeLayout layout(rc->max_workers, rc->task_capacity);
    auto* slot = reinterpret_cast<WorkerSlot*>(reinterpret_cast<uint8_t*>(rc) + layout.slots_at) + index;
    slot->pid.store(pid, std::memory_order_relaxed);
    slot->exit_status.store(status, std::memory_order_relaxed);
    slot->state.store(static_cast<uint32_t>(WorkerState::kExited), std::memory_order_release);
    ring_doorbell(rc);
  });
  m.def("runtime_resources", [](const std::shared_ptr<Store>& store) {
    auto* rc = reinterpret_cast<RuntimeControl*>(store->runtime_region());
    py::dict d;
    if (rc == nullptr) return d;
    for (uint32_t i = 0; i < kMaxResources; ++i) {
      if (rc->resource_names[i][0] == 0) continue;
      d[py::str(rc->resource_names[i])] = static_cast<double>(rc->totals[i]) / kResourceUnit;
    }
    return d;
  });
  m.def("shutting_down", [](const std::shared_ptr<Store>& store) {
    auto* rc = reinterpret_cast<RuntimeControl*>(store->runtime_region());
    return rc->shutting_down.load(std::memory_order_acquire) != 0;
  });

  py::class_<Pin>(m, "_Pin", py::buffer_protocol()).def_buffer([](Pin& p) {
    return py::buffer_info(const_cast<uint8_t*>(p.view().data), 1,
                           py::format_descriptor<uint8_t>::format(), 1,
                           {static_cast<py::ssize_t>(p.view().size)}, {1}, /*readonly=*/true);
  });

  py::class_<ObjectRef>(m, "ObjectRef")
      .def("hex", &ObjectRef::hex, "The id as 32 hex digits.")
      .def("binary", &ObjectRef::binary, "The id as 16 bytes.")
      .def("__repr__", [](const ObjectRef& r) { return "ObjectRef(" + r.hex() + ")"; })
      .def("__hash__",
           [](const ObjectRef& r) {
             return static_cast<py::ssize_t>((r.id().lo * 0x9E3779B97F4A7C15ULL) ^ r.id().hi);
           })
      .def("__eq__",
           [](const ObjectRef& a, py::object b) {
             if (!py::isinstance<ObjectRef>(b)) return false;
             return a.id() == b.cast<const ObjectRef&>().id();
           })
      .def("__ne__", [](const ObjectRef& a, py::object b) {
        if (!py::isinstance<ObjectRef>(b)) return true;
        return a.id() != b.cast<const ObjectRef&>().id();
      });
}
