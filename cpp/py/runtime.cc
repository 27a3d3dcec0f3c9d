// runtime: the task runtime as Python sees it: Scheduler, Worker, TaskOptions,
// SchedulerConfig, and the forkserver's verbs.
#include "py/runtime.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "py/errors.h"
#include "py/objects.h"
#include "py/options.h"
#include "placement.h"
#include "py/refs.h"
#include "runtime_region.h"
#include "submission.h"

namespace ember::py_bind {

namespace {

/// A submission's spec and the ids of its top-level ObjectRef arguments.
struct Prepared {
  TaskSpec spec;
  std::vector<ObjectID> deps;
};

/// Makes the spec of a call of `function` (a task's function or an actor's class) and writes
/// its arguments: inline when small and plain, else as an args object the task holds (see
/// submission.h); reserves the returns last.
Prepared prepare(Store& store, const RuntimeControl& rc, const ObjectRef& function,
                 const TaskOptions& options, const py::object& args_stream,
                 const py::list& args_buffers, const py::list& args_nested, const py::list& deps) {
  Prepared p{TaskSpec{}, ids_of(deps)};
  p.spec = unwrap(make_spec(rc, function.id(), options, p.deps));
  if (args_stream.is_none()) {
    p.spec.flags |= kSpecNoArgs;
  } else {
    auto stream = py::reinterpret_borrow<py::bytes>(args_stream);
    if (!set_inline_args(p.spec, std::string_view(stream),
                         args_buffers.empty() && args_nested.empty())) {
      p.spec.args = store.new_id();
      // The task's hold, not this process's: whoever ends the task releases it.
      write_object(store, p.spec.args, stream, args_buffers, args_nested,
                   ObjectMeta{0, ErrorKind::kNone, /*mine=*/false});
    }
  }
  check(reserve_returns(store, p.spec));
  return p;
}

/// The ObjectRefs of a spec's returns, owned by the caller.
py::list return_refs(const std::shared_ptr<Store>& store, const TaskSpec& spec) {
  py::list refs;
  for (uint32_t i = 0; i < spec.num_returns; ++i) {
    refs.append(std::make_unique<ObjectRef>(ObjectID{spec.returns.hi, spec.returns.lo + i},
                                            spec.returns, store, true));
  }
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
                        s.flags, s.actor,
                        (s.flags & (kSpecActorCreate | kSpecActorMethod)) != 0 ? 0 : s.max_calls);
}

/// A fixed array of resource amounts as a Python list property (shorter lists are padded
/// with zeros; longer ones are a ValueError).
template <typename T>
void resource_property(py::class_<T>& cls, const char* name, int64_t* (*field)(T&)) {
  cls.def_property(
      name, [field](T& t) { return std::vector<int64_t>(field(t), field(t) + kMaxResources); },
      [field, name](T& t, const std::vector<int64_t>& v) {
        if (v.size() > kMaxResources) {
          throw py::value_error(std::string(name) + ": at most " + std::to_string(kMaxResources) +
                                " resources");
        }
        std::fill(field(t), field(t) + kMaxResources, 0);
        std::copy(v.begin(), v.end(), field(t));
      });
}

py::dict scheduler_stats(DriverRuntime& rt) {
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
}

py::list actor_summaries(DriverRuntime& rt) {
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
}

py::list task_summaries(DriverRuntime& rt) {
  py::list out;
  for (const auto& t : rt.scheduler->tasks()) {
    py::dict d;
    d["name"] = t.name;
    d["task_id"] = id_to_hex(t.returns);
    d["state"] = t.state;
    d["worker_pid"] = t.worker_pid;
    d["running_s"] = static_cast<double>(t.running_ns) / 1e9;
    out.append(d);
  }
  return out;
}

void bind_options(py::module_& m) {
  py::class_<TaskOptions> task(m, "TaskOptions",
                               "A task's, actor creation's or actor call's options (submission.h).");
  init_from_kwargs(task)
      .def_readwrite("name", &TaskOptions::name)
      .def_readwrite("num_returns", &TaskOptions::num_returns)
      .def_readwrite("max_retries", &TaskOptions::max_retries)
      .def_readwrite("flags", &TaskOptions::flags)
      .def_readwrite("max_calls", &TaskOptions::max_calls)
      .def_readwrite("max_restarts", &TaskOptions::max_restarts)
      .def_readwrite("max_task_retries", &TaskOptions::max_task_retries)
      .def_readwrite("concurrency_group", &TaskOptions::concurrency_group)
      .def_readwrite("detached", &TaskOptions::detached)
      .def_readwrite("placement_group", &TaskOptions::placement_group)
      .def_readwrite("bundle_index", &TaskOptions::bundle_index);
  resource_property<TaskOptions>(task, "resources",
                                 [](TaskOptions& o) { return o.resources.data(); });

  py::class_<SchedulerConfig> cfg(m, "SchedulerConfig", "The node's scheduler (scheduler.h).");
  init_from_kwargs(cfg)
      .def_readwrite("names", &SchedulerConfig::names)
      .def_readwrite("num_cpus", &SchedulerConfig::num_cpus)
      .def_readwrite("max_workers", &SchedulerConfig::max_workers)
      .def_readwrite("task_capacity", &SchedulerConfig::task_capacity)
      .def_readwrite("log_dir", &SchedulerConfig::log_dir)
      .def_readwrite("memory_threshold", &SchedulerConfig::memory_threshold)
      .def_readwrite("memory_limit", &SchedulerConfig::memory_limit)
      .def_readwrite("memory_period_ms", &SchedulerConfig::memory_period_ms)
      .def_readwrite("oom_retry_delay_ms", &SchedulerConfig::oom_retry_delay_ms)
      .def_readwrite("actor_graceful_shutdown_ms", &SchedulerConfig::actor_graceful_shutdown_ms)
      .def_readwrite("task_retry_delay_ms", &SchedulerConfig::task_retry_delay_ms);
  resource_property<SchedulerConfig>(cfg, "totals",
                                     [](SchedulerConfig& c) { return &c.totals[0]; });
}

/// Sends a prepared submission on its way from `rt` (without the GIL); its returns' refs.
template <typename Runtime>
py::list dispatch(Runtime& rt, Prepared& p) {
  py::list refs = return_refs(rt.store, p.spec);
  Status st;
  {
    py::gil_scoped_release nogil;
    st = rt.dispatch(p.spec, std::move(p.deps));
  }
  check(st);
  return refs;
}

/// submit, submit_actor and create_actor, the same from the driver and from a worker.
template <typename Runtime>
void bind_submissions(py::class_<Runtime>& cls) {
  cls.def(
         "submit",
         [](Runtime& rt, const ObjectRef& function, const TaskOptions& options,
            const py::object& args_stream, const py::list& args_buffers,
            const py::list& args_nested, const py::list& deps) {
           Prepared p = prepare(*rt.store, rt.control(), function, options, args_stream,
                                args_buffers, args_nested, deps);
           return dispatch(rt, p);
         },
         py::arg("function"), py::arg("options"), py::arg("args_stream"),
         py::arg("args_buffers"), py::arg("args_nested"), py::arg("deps"),
         "f.remote(): the returns' ObjectRefs.")
      .def(
          "submit_actor",
          [](Runtime& rt, uint32_t actor, const ObjectRef& cls_ref, const TaskOptions& options,
             const py::object& args_stream, const py::list& args_buffers,
             const py::list& args_nested, const py::list& deps) {
            Prepared p = prepare(*rt.store, rt.control(), cls_ref, options, args_stream,
                                 args_buffers, args_nested, deps);
            p.spec.actor = actor;
            p.spec.flags |= kSpecActorMethod;
            p.spec.concurrency_group = options.concurrency_group;
            return dispatch(rt, p);
          },
          py::arg("actor"), py::arg("cls"), py::arg("options"), py::arg("args_stream"),
          py::arg("args_buffers"), py::arg("args_nested"), py::arg("deps"),
          "handle.method.remote(): the returns' ObjectRefs.")
      .def(
          "create_actor",
          [](Runtime& rt, const ObjectRef& cls_ref, const TaskOptions& options,
             const py::object& args_stream, const py::list& args_buffers,
             const py::list& args_nested, const py::list& deps) {
            Prepared p = prepare(*rt.store, rt.control(), cls_ref, options, args_stream,
                                 args_buffers, args_nested, deps);
            py::list refs = return_refs(rt.store, p.spec);
            Result<uint32_t> id = Status::OK();
            {
              py::gil_scoped_release nogil;
              id = rt.create_actor(p.spec, std::move(p.deps), options);
            }
            return py::make_tuple(unwrap(std::move(id)), refs[0]);
          },
          py::arg("cls"), py::arg("options"), py::arg("args_stream"), py::arg("args_buffers"),
          py::arg("args_nested"), py::arg("deps"),
          "Cls.remote(): (the actor's id, its ready ref: the creation's return).");
}

void bind_scheduler(py::module_& m) {
  py::class_<DriverRuntime> cls(m, "Scheduler");
  bind_submissions(cls);
  cls
      .def(py::init([](std::shared_ptr<Store> store, SchedulerConfig cfg) {
             auto rt = std::make_unique<DriverRuntime>();
             rt->store = store;
             rt->scheduler = std::make_unique<Scheduler>(std::move(store), std::move(cfg));
             return rt;
           }),
           py::arg("store"), py::arg("config"))
      .def("start", [](DriverRuntime& rt) { rt.scheduler->start(); })
      .def("stop",
           [](DriverRuntime& rt) {
             py::gil_scoped_release nogil;
             rt.scheduler->stop();
           })
      .def("kill_actor",
           [](DriverRuntime& rt, uint32_t actor, bool no_restart) {
             py::gil_scoped_release nogil;
             rt.scheduler->kill_actor(actor, no_restart);
           })
      .def("actor_alive",
           [](DriverRuntime& rt, uint32_t actor) {
             std::string why;
             bool alive;
             {
               py::gil_scoped_release nogil;
               alive = rt.scheduler->actor_alive(actor, &why);
             }
             return py::make_tuple(alive, why);
           })
      .def("cancel",
           [](DriverRuntime& rt, const ObjectRef& ref, bool force, bool recursive) {
             py::gil_scoped_release nogil;
             return rt.scheduler->cancel(ref.id(), force, recursive);
           })
      .def("busy",
           [](DriverRuntime& rt) {
             py::gil_scoped_release nogil;
             return rt.scheduler->busy();
           })
      .def("stats", &scheduler_stats)
      .def("worker_pids", [](DriverRuntime& rt) { return rt.scheduler->worker_pids(); })
      .def("actors", &actor_summaries)
      .def("tasks", &task_summaries)
      .def("task_events", [](DriverRuntime& rt) {
        py::list out;
        for (const auto& e : rt.scheduler->task_events()) {
          out.append(py::make_tuple(e.name, e.worker_pid, e.started_ns, e.finished_ns,
                                    id_to_hex(e.returns), e.failed, static_cast<int>(e.kind)));
        }
        return out;
      });
}

void bind_worker(py::module_& m) {
  py::class_<WorkerRuntime> cls(m, "Worker");
  bind_submissions(cls);
  cls
      .def(py::init([](std::shared_ptr<Store> store, uint32_t index) {
             auto rt = std::make_unique<WorkerRuntime>();
             store->set_client(index + 1);  // its ledger: released by the driver if it dies
             rt->store = store;
             rt->worker = std::make_unique<Worker>(std::move(store), index);
             return rt;
           }),
           py::arg("store"), py::arg("index"))
      .def("announce", [](WorkerRuntime& rt, int32_t pid) { rt.worker->announce(pid); })
      .def("next_task",
           [](WorkerRuntime& rt, int timeout_ms) {
             py::gil_scoped_release nogil;
             return rt.worker->next_task(timeout_ms);
           })
      .def("task_info",
           [](WorkerRuntime& rt, uint32_t index) { return task_info(rt.worker->record(index)); })
      .def(
          "concurrency_group",
          [](WorkerRuntime& rt, uint32_t index) {
            return rt.worker->record(index).spec.concurrency_group;
          },
          "An actor call's group: 1 + its index in the actor's groups; 0: its method's own.")
      .def(
          "cancel_requested",
          [](WorkerRuntime& rt, uint32_t index) {
            return rt.worker->record(index).cancel_requested.load(std::memory_order_acquire) != 0;
          },
          "True once ember.cancel() asked running task `index` to stop.")
      .def(
          "task_resources",
          [](WorkerRuntime& rt, uint32_t index) {
            const TaskSpec& s = rt.worker->record(index).spec;
            return std::vector<int64_t>(s.resources, s.resources + kMaxResources);
          },
          "The resources the task asked for (kResourceUnit, in the node's slot order).")
      .def(
          "task_placement",
          [](WorkerRuntime& rt, uint32_t index) {
            const TaskSpec& s = rt.worker->record(index).spec;
            return py::make_tuple(s.placement_group, s.bundle_index,
                                  (s.flags & kSpecCaptureChildTasks) != 0);
          },
          "(placement group id or 0, bundle index, capture child tasks) of the task.")
      .def("put_return",
           [](WorkerRuntime& rt, uint32_t index, uint32_t i, const py::bytes& stream,
              const py::list& buffers, const py::list& nested, bool is_error) {
             TaskRecord& r = rt.worker->record(index);
             const TaskSpec& s = r.spec;
             write_object(*rt.store, ObjectID{s.returns.hi, s.returns.lo + i}, stream, buffers,
                          nested, ObjectMeta{is_error ? uint16_t{kFlagError} : uint16_t{0}});
             // relaxed: published by the worker's release of DONE (Worker::finish).
             if (is_error && i == 0) r.failed.store(1, std::memory_order_relaxed);
           })
      .def(
          "stream_slot",
          [](WorkerRuntime& rt, uint32_t index, uint64_t k) {
            const TaskSpec& s = rt.worker->record(index).spec;
            return static_cast<int>(unwrap(rt.store->stream_slot(s.returns, k)));
          },
          py::arg("index"), py::arg("k"),
          "Before the producer writes item k: 0 write it, 1 an earlier attempt made it, 2 it "
          "is gone (Store::StreamSlot).")
      .def(
          "put_stream_item",
          [](WorkerRuntime& rt, uint32_t index, uint64_t k, const py::bytes& stream,
             const py::list& buffers, const py::list& nested, bool is_error) {
            const TaskSpec& s = rt.worker->record(index).spec;
            ObjectMeta meta{is_error ? uint16_t{kFlagError} : uint16_t{0}};
            meta.fulfil_only = true;
            return write_object(*rt.store, stream_item_id(s.returns, k), stream, buffers, nested,
                                meta);
          },
          "Writes item k of the task's stream; False if its consumer let the stream go.")
      .def("finish", [](WorkerRuntime& rt, uint32_t index) { rt.worker->finish(index); },
           "The task's results are sealed: its inputs go back, then it is DONE.")
      .def("kill_actor",
           [](WorkerRuntime& rt, uint32_t actor, bool no_restart) {
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
           })
      .def(
          "cancel",
          [](WorkerRuntime& rt, const ObjectRef& ref, bool force, bool recursive) {
            TaskSpec spec{};
            spec.returns = ref.id();
            spec.flags = kSpecCancel;
            spec.max_retries = (force ? kCancelForce : 0) | (recursive ? kCancelRecursive : 0);
            Status st;
            {
              py::gil_scoped_release nogil;  // a full ring waits for the scheduler
              st = rt.worker->submit(spec);
            }
            check(st);
          },
          py::arg("ref"), py::arg("force"), py::arg("recursive"),
          "ember.cancel() in a task or actor: the scheduler cancels it when it collects this.")
      .def("mark_exit_intended", [](WorkerRuntime& rt) { rt.worker->mark_exit_intended(); })
      .def("ask_retire", [](WorkerRuntime& rt) { rt.worker->ask_retire(); },
           "max_calls reached: the scheduler pushes it nothing more and retires it once idle.")
      .def("current_task", [](WorkerRuntime& rt) { return rt.worker->current(); });
}

/// The forkserver's view (spawn requests in, worker exits out) and what any process reads of
/// the runtime region.
/// The runtime region's resources by name, `amount(rc, i)` of each (in kResourceUnit); with
/// `skip_empty`, amounts of 0 or less are left out (as Ray's available_resources() does).
template <typename Amount>
py::dict resources_by_name(const Store& store, Amount amount, bool skip_empty) {
  RuntimeRegion region(store);
  py::dict d;
  if (region.control == nullptr) return d;
  const RuntimeControl& rc = *region.control;
  for (uint32_t i = 0; i < kMaxResources; ++i) {
    const int64_t value = amount(rc, i);
    if (rc.resource_names[i][0] == 0 || (skip_empty && value <= 0)) continue;
    d[py::str(rc.resource_names[i])] = static_cast<double>(value) / kResourceUnit;
  }
  return d;
}

void bind_region(py::module_& m) {
  m.def(
      "pop_spawn",
      [](const std::shared_ptr<Store>& store, int timeout_ms) -> py::object {
        RuntimeRegion region(*store);
        SpawnRequest req{};
        bool got;
        {
          py::gil_scoped_release nogil;
          got = pop_spawn_request(region, req, timeout_ms);
        }
        if (!got) return py::none();
        return py::make_tuple(req.slot, req.generation, req.actor != 0);
      },
      py::arg("store"), py::arg("timeout_ms"),
      "The forkserver's next spawn request: (slot, generation, is_actor), or None.");
  m.def(
      "report_exit",
      [](const std::shared_ptr<Store>& store, uint32_t index, int32_t pid, int32_t status) {
        report_worker_exit(RuntimeRegion(*store), index, pid, status);
      },
      py::arg("store"), py::arg("index"), py::arg("pid"), py::arg("status"),
      "The forkserver reaped worker `index`: its pid and raw wait status.");
  m.def(
      "runtime_resources",
      [](const std::shared_ptr<Store>& store) {
        return resources_by_name(
            *store, [](const RuntimeControl& rc, uint32_t i) { return rc.totals[i]; }, false);
      },
      py::arg("store"), "The node's resources by name (their totals).");
  m.def(
      "runtime_available",
      [](const std::shared_ptr<Store>& store) {
        return resources_by_name(
            *store,
            [](const RuntimeControl& rc, uint32_t i) {
              return rc.available[i].load(std::memory_order_relaxed);
            },
            true);
      },
      py::arg("store"),
      "The node's resources not leased, by name, as of the scheduler's last round (from any "
      "process of the node).");
  m.def(
      "shutting_down",
      [](const std::shared_ptr<Store>& store) {
        return RuntimeRegion(*store).control->shutting_down.load(std::memory_order_acquire) != 0;
      },
      py::arg("store"));
  m.def(
      "actor_alive",
      [](const std::shared_ptr<Store>& store, uint32_t actor) {
        RuntimeRegion region(*store);
        if (region.control == nullptr || actor == 0) return false;
        if (actor >= kTrackedActors) return true;
        // acquire: pairs with the scheduler's release of the bit (ActorTable::mark_dead).
        return (region.control->dead_actors[actor / 32].load(std::memory_order_acquire) &
                (1u << (actor % 32))) == 0;
      },
      py::arg("store"), py::arg("actor"),
      "False once actor `actor` is killed or dead for good (any process; task.h).");
  m.def(
      "request_placement_group",
      [](const std::shared_ptr<Store>& store, const std::vector<std::vector<int64_t>>& bundles,
         uint32_t strategy) {
        RuntimeRegion region(*store);
        if (strategy > static_cast<uint32_t>(GroupStrategy::kStrictSpread)) {
          throw py::value_error("unknown placement group strategy " + std::to_string(strategy));
        }
        return unwrap(request_group(region.control, region.groups, bundles,
                                            static_cast<GroupStrategy>(strategy)));
      },
      py::arg("store"), py::arg("bundles"), py::arg("strategy"),
      "Asks the scheduler for a placement group (placement.h); its id. Any process.");
  m.def(
      "remove_placement_group",
      [](const std::shared_ptr<Store>& store, uint32_t id) {
        RuntimeRegion region(*store);
        request_removal(region.control, region.groups, id);
      },
      py::arg("store"), py::arg("id"), "Asks the scheduler to remove a placement group.");
  m.def(
      "placement_group_state",
      [](const std::shared_ptr<Store>& store, uint32_t id) {
        RuntimeRegion region(*store);
        const GroupState state = group_state(region.groups, id);
        return py::make_tuple(static_cast<uint32_t>(state), group_created_ns(region.groups, id));
      },
      py::arg("store"), py::arg("id"),
      "(GroupState: 3 pending, 4 created, 5 removed; CLOCK_MONOTONIC ns it was created at).");
  m.def(
      "runtime_bytes",
      [](uint32_t max_workers, uint32_t task_capacity) {
        return RuntimeLayout(max_workers, task_capacity).size;
      },
      py::arg("max_workers"), py::arg("task_capacity"),
      "Bytes of runtime region a store needs for this many workers and task records.");
}

}  // namespace

Status DriverRuntime::dispatch(TaskSpec& spec, std::vector<ObjectID> deps) {
  if ((spec.flags & kSpecActorMethod) != 0) {
    scheduler->submit_actor_call(spec, std::move(deps));
    return Status::OK();
  }
  scheduler->submit(spec, std::move(deps));
  return Status::OK();
}

Result<uint32_t> DriverRuntime::create_actor(TaskSpec& spec, std::vector<ObjectID> deps,
                                             const TaskOptions& options) {
  return scheduler->create_actor(spec, std::move(deps), options.max_restarts,
                                 options.max_task_retries, options.detached);
}

Status WorkerRuntime::dispatch(TaskSpec& spec, std::vector<ObjectID> /*deps: in the spec*/) {
  worker->stamp_parent(spec);
  return worker->submit(spec);
}

Result<uint32_t> WorkerRuntime::create_actor(TaskSpec& spec, std::vector<ObjectID> deps,
                                             const TaskOptions& options) {
  // The id is ours to take, so the handle exists at once; the scheduler reads the creation
  // from our ring before any call made on the handle (see Scheduler::collect_submissions).
  spec.actor = worker->control()->next_actor.fetch_add(1, std::memory_order_relaxed);
  spec.flags |= kSpecActorCreate | (options.detached ? kSpecDetached : 0u);
  spec.max_retries = options.max_restarts;  // a creation's max_retries: its restarts
  spec.max_task_retries = options.max_task_retries;
  Status st = dispatch(spec, std::move(deps));
  if (!st.ok()) return st;
  return spec.actor;
}

Worker* worker_of(const py::object& worker) {
  return worker.is_none() ? nullptr : worker.cast<WorkerRuntime&>().worker.get();
}

void bind_runtime(py::module_& m) {
  bind_options(m);
  bind_scheduler(m);
  bind_worker(m);
  bind_region(m);
}

}  // namespace ember::py_bind
