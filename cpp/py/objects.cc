// objects: the Store as Python sees it: put, get, wait.
#include "py/objects.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "py/errors.h"
#include "py/options.h"
#include "py/refs.h"
#include "py/runtime.h"

namespace ember::py_bind {

namespace {

/// How long a wait sleeps without the GIL before it lets Python's signal handlers run: Ctrl-C
/// (KeyboardInterrupt), SIGALRM timeouts and a cancel's SIGINT in a task act within this.
constexpr int64_t kSignalCheckNs = 20'000'000;

/// Marks a worker blocked for the life of a wait (see the invariants).
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

int64_t timeout_ns_of(const py::object& timeout) {
  return timeout.is_none() ? -1 : static_cast<int64_t>(timeout.cast<double>() * 1e9);
}

int64_t ns_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start)
      .count();
}

/// Waits until `num_ready` of `ids` are sealed (`ready[i]` says which), or, with `errors`, one
/// of them is a failure, or `timeout_ns` passes (< 0: forever). A wait that cannot end at once
/// marks `worker` blocked. Returns how many are ready.
size_t wait_sealed(Store& store, const std::vector<ObjectID>& ids, size_t num_ready,
                   int64_t timeout_ns, bool* ready, WaitErrors* errors, Worker* worker) {
  auto done = [&](size_t count) {
    return count >= num_ready || (errors != nullptr && errors->found);
  };
  size_t count = store.wait(ids.data(), ids.size(), num_ready, 0, ready, errors);
  if (done(count) || timeout_ns == 0) return count;
  BlockedWhileWaiting blocked(worker);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int64_t slice = kSignalCheckNs;
    if (timeout_ns > 0) slice = std::min(slice, std::max<int64_t>(0, timeout_ns - ns_since(start)));
    {
      py::gil_scoped_release nogil;
      count = store.wait(ids.data(), ids.size(), num_ready, slice, ready, errors);
    }
    if (done(count) || slice < kSignalCheckNs || store.closed()) return count;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

/// Reads an object: (pickle stream, [out-of-band buffers] or None, flags, error kind), or None
/// if it is not sealed yet. Objects without buffers come back as bytes and are unpinned at
/// once; otherwise the buffers are read-only memoryviews on the segment that pin the object
/// while they (or arrays built on them) live.
py::object get_object(const std::shared_ptr<Store>& current, const ObjectRef& ref) {
  const std::shared_ptr<Store>& store = store_of(ref, current);
  Result<ObjectParts> read = read_object(*store, ref.id());
  if (!read.ok() && read.status().code() == StatusCode::kNotReady) return py::none();
  ObjectParts parts = unwrap(std::move(read));
  const ObjectHeader& h = parts.header;
  const uint8_t* stream = parts.view.data + parts.stream_at;
  if (h.nbuf == 0) {
    py::bytes out(reinterpret_cast<const char*>(stream), h.stream_len);
    store->unpin(ref.id());
    return py::make_tuple(out, py::none(), h.flags, h.error_kind);
  }
  auto pin = py::cast(std::make_unique<Pin>(store, ref.id(), parts.view));
  py::memoryview whole = py::memoryview(pin);
  auto slice = [&whole](uint64_t at, uint64_t len) {
    return whole[py::slice(static_cast<py::ssize_t>(at), static_cast<py::ssize_t>(at + len), 1)];
  };
  py::list bufs;
  for (const BufferSpan& sp : parts.buffers) bufs.append(slice(sp.offset, sp.len));
  return py::make_tuple(slice(parts.stream_at, h.stream_len), bufs, h.flags, h.error_kind);
}

bool is_failure(const py::object& part) {
  return !part.is_none() && (part.cast<py::tuple>()[2].cast<uint32_t>() & kFlagError) != 0;
}

/// ember.get(): the parts of each object (as get_object), in one call: it fetches what is
/// sealed, waits for the rest and fetches them as they are sealed. It returns early, with None
/// for what is missing, when a fetched object is a failure (Ray raises it without waiting for
/// the others) or when `timeout` passes.
py::list get_objects(const std::shared_ptr<Store>& store, const py::list& refs,
                     const py::object& timeout, Worker* worker) {
  const size_t n = refs.size();
  py::list parts(n);
  std::vector<size_t> missing;
  bool failed = false;
  for (size_t i = 0; i < n; ++i) {
    py::object p = get_object(store, refs[i].cast<const ObjectRef&>());
    if (p.is_none()) missing.push_back(i);
    failed = failed || is_failure(p);
    parts[i] = std::move(p);
  }
  const int64_t timeout_ns = timeout_ns_of(timeout);
  const auto start = std::chrono::steady_clock::now();
  while (!missing.empty() && !failed) {
    const int64_t left = timeout_ns < 0 ? -1 : std::max<int64_t>(0, timeout_ns - ns_since(start));
    std::vector<ObjectID> ids;
    ids.reserve(missing.size());
    for (size_t i : missing) ids.push_back(refs[i].cast<const ObjectRef&>().id());
    std::unique_ptr<bool[]> ready(new bool[ids.size()]());
    WaitErrors errors;
    const size_t count = wait_sealed(*store, ids, ids.size(), left, ready.get(), &errors, worker);
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
    if (count < ids.size() && !errors.found) break;  // timed out, or the store closed
  }
  return parts;
}

/// ember.wait(): one boolean per ref, saying which are sealed.
py::list wait_objects(Store& store, const py::list& refs, size_t num_ready,
                      const py::object& timeout, Worker* worker) {
  std::vector<ObjectID> ids = ids_of(refs);
  std::unique_ptr<bool[]> ready(new bool[ids.size()]());
  wait_sealed(store, ids, num_ready, timeout_ns_of(timeout), ready.get(), nullptr, worker);
  py::list out;
  for (size_t i = 0; i < ids.size(); ++i) out.append(ready[i]);
  return out;
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

py::list list_objects(Store& s) {
  static const char* kStates[] = {"EMPTY", "CREATED", "SEALED", "TOMBSTONE", "PENDING", "SPILLED"};
  py::list out;
  for (const Store::ObjectInfo& o : s.list_objects()) {
    py::dict d;
    d["object_id"] = id_to_hex(o.id);
    d["state"] = kStates[static_cast<uint32_t>(o.state) % 6];
    d["size"] = o.size;
    d["ref_count"] = o.refs;
    d["pin_count"] = o.pins;
    d["owner_pid"] = o.owner_pid;
    py::dict holders;
    for (const auto& [client, count] : o.holders) holders[py::int_(client - 1)] = count;
    d["worker_holders"] = holders;
    out.append(d);
  }
  return out;
}

}  // namespace

bool write_object(Store& store, const ObjectID& id, const py::bytes& stream,
                  const py::list& buffers, const py::list& nested, ObjectMeta meta) {
  std::vector<py::buffer_info> infos;
  std::vector<uint64_t> lens;
  infos.reserve(buffers.size());
  lens.reserve(buffers.size());
  for (const auto& b : buffers) {
    infos.push_back(py::reinterpret_borrow<py::buffer>(b).request());
    lens.push_back(static_cast<uint64_t>(infos.back().size * infos.back().itemsize));
  }
  Result<ObjectWriter> begun =
      ObjectWriter::begin(store, id, std::string_view(stream), lens, ids_of(nested), meta);
  if (meta.fulfil_only && begun.status().code() == StatusCode::kNotFound) return false;
  ObjectWriter w = unwrap(std::move(begun));
  {
    py::gil_scoped_release nogil;  // the buffers stay alive: `buffers` holds them
    for (uint32_t i = 0; i < w.num_buffers(); ++i) {
      w.copy_buffer(i, static_cast<const uint8_t*>(infos[i].ptr));
    }
  }
  check(w.finish());
  return true;
}

void bind_store(py::module_& m) {
  py::class_<StoreOptions> options(m, "StoreOptions", "How to size a new store (store.h).");
  init_from_kwargs(options)
      .def_readwrite("capacity", &StoreOptions::capacity)
      .def_readwrite("table_capacity", &StoreOptions::table_capacity)
      .def_readwrite("prefault", &StoreOptions::prefault)
      .def_readwrite("copy_threads", &StoreOptions::copy_threads)
      .def_readwrite("runtime_bytes", &StoreOptions::runtime_bytes)
      .def_readwrite("ledger_clients", &StoreOptions::ledger_clients)
      .def_readwrite("spill_dir", &StoreOptions::spill_dir)
      .def_readwrite("spill_high_water", &StoreOptions::spill_high_water)
      .def_readwrite("idle_trim_s", &StoreOptions::idle_trim_s);

  py::class_<Store, std::shared_ptr<Store>>(m, "Store")
      .def_static(
          "create", [](const StoreOptions& o) { return unwrap(Store::create(o)); },
          py::arg("options"), "Creates a node's store in a new memfd.")
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
      .def(
          "put",
          [](const std::shared_ptr<Store>& s, const py::bytes& stream, const py::list& buffers,
             const py::list& nested) {
            ObjectID id = s->new_id();
            write_object(*s, id, stream, buffers, nested);
            return std::make_unique<ObjectRef>(id, s, true);
          },
          py::arg("stream"), py::arg("buffers"), py::arg("nested"),
          "Stores serialize()'s parts as a new object; returns the ObjectRef that owns it.")
      .def(
          "put_unowned",
          [](Store& s, const py::bytes& id, const py::bytes& stream, const py::list& buffers) {
            write_object(s, id_from_binary(id), stream, buffers, py::list(),
                         ObjectMeta{0, ErrorKind::kNone, /*mine=*/false});
          },
          py::arg("id"), py::arg("stream"), py::arg("buffers"),
          "An object at an id the caller chose (the actor-name registry), whose one count "
          "belongs to no process: it stays when its writer exits, until release_unowned. "
          "EmberError if one is there already.")
      .def(
          "release_unowned",
          [](Store& s, const py::bytes& id) { s.release_ref(id_from_binary(id), false); },
          py::arg("id"))
      .def("get", &get_object, py::arg("ref"),
           "(stream, buffers or None, flags, error kind) of a sealed object, or None.")
      .def(
          "get_many",
          [](const std::shared_ptr<Store>& s, const py::list& refs, const py::object& timeout,
             const py::object& worker) {
            return get_objects(s, refs, timeout, worker_of(worker));
          },
          py::arg("refs"), py::arg("timeout"), py::arg("worker") = py::none(),
          "The parts of each object, waiting for them; None for those missing when a fetched one "
          "is a failure or the timeout passed.")
      .def(
          "wait",
          [](Store& s, const py::list& refs, size_t num_ready, const py::object& timeout,
             const py::object& worker) {
            return wait_objects(s, refs, num_ready, timeout, worker_of(worker));
          },
          py::arg("refs"), py::arg("num_ready"), py::arg("timeout"),
          py::arg("worker") = py::none(), "One bool per ref: sealed (ready) or not.")
      .def(
          "named_id",
          [](const Store& s, uint64_t key) {
            return id_to_bytes(ObjectID{s.node_tag(), key | kNamedIdBit});
          },
          py::arg("key"),
          "The id of an object of this node chosen by name (`key`), never one new_id() gives.")
      .def(
          "ref_from_binary",
          [](const std::shared_ptr<Store>& s, const py::bytes& b) {
            ObjectID id = id_from_binary(b);
            bool counted = id.hi == s->node_tag() && s->add_ref(id).ok();
            return std::make_unique<ObjectRef>(id, s, counted);
          },
          py::arg("binary"))
      .def(
          "stream_item",
          [](const std::shared_ptr<Store>& s, const ObjectRef& done, uint64_t index, bool take) {
            ObjectID id = stream_item_id(done.id(), index);
            if (take) s->adopt_ref(id);  // the stream's count on it is now this ref's
            return std::make_unique<ObjectRef>(id, done.task(), s, take);
          },
          py::arg("done"), py::arg("index"), py::arg("take"),
          "Item `index` of the stream whose task returns `done`: with `take`, the ObjectRef "
          "that now owns the stream's count on it (call it once per item, when it is sealed); "
          "else one that holds nothing, to wait on.")
      .def(
          "stream_close",
          [](Store& s, const ObjectRef& done, uint64_t from) { s.stream_close(done.id(), from); },
          py::arg("done"), py::arg("from_index"),
          "Gives back the stream's items from `from_index` on: the consumer is done with it.")
      .def(
          "take_unreported",
          [](const std::shared_ptr<Store>& s, double timeout) {
            uint64_t dropped = 0;
            std::vector<ObjectID> ids;
            {
              py::gil_scoped_release nogil;
              ids = s->take_unreported(static_cast<int64_t>(timeout * 1e9), &dropped);
            }
            py::list refs;
            for (const ObjectID& id : ids) {
              refs.append(py::cast(std::make_unique<ObjectRef>(id, s, true)));
            }
            return py::make_tuple(refs, dropped);
          },
          py::arg("timeout"),
          "(refs, dropped): the failures freed before anyone read them, waiting up to "
          "`timeout` seconds for some; each ref owns the object (read it, then drop it). "
          "`dropped`: how many more were freed unreported (the store's list was full).")
      .def("contains", [](Store& s, const ObjectRef& r) { return s.is_sealed(r.id()); })
      .def("exists", [](Store& s, const ObjectRef& r) { return s.contains(r.id()); },
           "True if the object is in the store in any state (promised, being written, sealed).")
      .def("list_objects", &list_objects)
      .def("debug_half_write",
           [](const std::shared_ptr<Store>& s, uint64_t nbytes) {
             // Test hook: an object created and never sealed, as a process killed mid-write
             // leaves it.
             ObjectID id = s->new_id();
             std::memset(unwrap(s->create_object(id, nbytes)), 0xAB, nbytes);
             return id_to_hex(id);
           })
      .def("debug_die_holding_lock", [](Store& s) {
        py::gil_scoped_release nogil;
        s.debug_die_holding_lock();
      });
}

}  // namespace ember::py_bind
