// Scheduler: the driver's side of the task runtime. A coordinator: it owns the pieces, holds
// the one lock they share, and sequences them; each piece owns one concept and its invariants.
//
//   driver threads ──submit()──┬─ direct: push TaskRef into a worker's inbound ring
//                              └─ else: the dispatcher's queue ──► scheduler thread ──► rings
//   workers ── outbound rings (nested submissions, actor creations/kills) ──► scheduler thread
//   forkserver ── WorkerSlot.state = kExited, doorbell ──► scheduler thread (reap)
//
// The pieces (each header states its protocol and invariants)
//   resources.h    ResourcePool, Lease: amounts not leased, GPU ids, lend / take back
//   placement.h    NodeResources: the node's pool and the placement groups' bundles
//   task_table.h   TaskTable: the records in the segment, their generations, publish / free
//   task_events.h  TaskEvents: finished tasks for ember.timeline()
//   worker_pool.h  WorkerPool: slots, spawn, announce, exits and their descriptions, retiring
//   dispatch.h     Dispatcher: the queue, where each task goes, stealing, stranded tasks
//   actors.h       ActorTable: actors, their waiting calls, restarts, kills
//   memory_monitor.h, contention.h: the watchers (the OOM victim, cpus_contended)
//   What stays here: the public API, the loop, reaping (retry or fail what a dead worker
//   held), cancel, and the summaries that read several pieces.
//
// One pass of the scheduler thread
//   1. without mu_: read_exits() (exited workers, with the tail of their logs),
//      read_memory_pressure() (/proc/meminfo, cgroup files, /proc/PID/statm when above the
//      threshold), watch_contention() (/proc/PID/schedstat, /proc/stat; decides alone)
//   2. under mu_: reap, collect submissions, lend leases, steal, dispatch the queue and the
//      actors' calls, end unreferenced actors, the OOM kill, release idle leases, start and
//      retire workers, set the notify level
//   3. sleep on the doorbell (50 ms at most)
//
// Invariants
//  - mu_ guards every piece's state (the pieces have no locks of their own); the loop thread
//    also owns a few fields outside it (marked below), and stats() reads the contention
//    decision through an atomic.
//  - No slow I/O and no waiting under mu_: /proc and log files are read in step 1, before mu_
//    is taken, and applied under it after checking they still describe the same process
//    (slot generation, pid); a worker that exits after the read is reaped in the next pass
//    (its doorbell makes that pass immediate). Spawning never waits: the spawn ring holds a
//    request per slot (worker_pool.h P1). What runs under mu_ is bookkeeping, ring pushes,
//    store table operations (the store's own short lock) and kill(2).
//  - submit() holds mu_ for one try_dispatch() or one enqueue (O(workers in use)); the
//    bindings release the GIL before calling it, so a driver thread waiting for mu_ blocks
//    no Python thread.
//  - A task's resources are held by the worker it is dispatched to, as a lease (dispatch.h
//    D4); a record is freed only after the driver sees it DONE or its worker dead, and its
//    generation bump makes every copy of its TaskRef still in a ring stale (task_table.h).
//  - A task is never left waiting behind another while a worker that could run it idles
//    (dispatch.h D3, D5).
//  - The scheduler thread never takes the GIL.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "actors.h"
#include "contention.h"
#include "dispatch.h"
#include "memory_monitor.h"
#include "object_format.h"
#include "placement.h"
#include "resources.h"
#include "status.h"
#include "store.h"
#include "task.h"
#include "task_events.h"
#include "task_table.h"
#include "worker_pool.h"

namespace ember {

struct SchedulerConfig {
  int64_t totals[kMaxResources] = {};    ///< the node's resources in kResourceUnit
  std::vector<std::string> names;        ///< resource names, index-aligned with totals
  uint32_t num_cpus = 1;                 ///< workers started at once
  uint32_t max_workers = 256;
  uint32_t task_capacity = 8192;         ///< records (dispatched tasks) at once
  std::string log_dir;                   ///< where workers' .out/.err files are
  double memory_threshold = 0.95;        ///< kill a task's worker above this fraction; 0: off
  uint64_t memory_limit = 0;             ///< bytes the node may use (0: the machine's/cgroup's)
  uint32_t memory_period_ms = 250;       ///< how often the monitor looks
  uint32_t oom_retry_delay_ms = 1000;    ///< first backoff of a task retried after an OOM kill
  /// How long an actor no handle refers to has to end itself before it is killed (actors.h,
  /// A5); Ray's actor_graceful_shutdown_timeout_ms. 0: killed at once.
  uint32_t actor_graceful_shutdown_ms = 30000;
  /// How long a task or actor call that failed waits before it runs again (Ray's
  /// task_retry_delay_ms; workers wait as long before rerunning one that raised).
  uint32_t task_retry_delay_ms = 0;
};

/// Counters for introspection and tests.
struct SchedulerStats {
  uint64_t queued;        ///< waiting in the scheduler (deps or resources)
  uint64_t dispatched;    ///< tasks pushed to workers in total
  uint64_t direct;        ///< of which from the submitting thread
  uint64_t stolen;        ///< copies pushed to move a waiting task to an idle worker
  uint64_t retried;
  uint64_t failed;
  uint64_t oom_kills;     ///< workers killed by the memory monitor
  uint32_t workers_alive;
  uint32_t workers_started;
  bool cpus_contended;     ///< the node's processes wait for CPUs: nobody spins
  int64_t available[kMaxResources];  ///< resources not leased, in kResourceUnit
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<Store> store, SchedulerConfig cfg);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// Initialises the runtime region, starts the scheduler thread and asks for the first
  /// workers (the forkserver serves the spawn ring).
  void start();
  /// Stops the thread and wakes every worker so it can exit. Processes are the forkserver's.
  void stop();

  /// Submits a task whose returns were created PENDING and whose resources were checked
  /// feasible (submission.h: make_spec). `deps` are the top-level ObjectRef arguments.
  void submit(const TaskSpec& spec, std::vector<ObjectID> deps);
  /// Creates an actor: a dedicated worker process that runs `creation` (the class's
  /// __init__) first and then only that actor's calls. Returns the actor id.
  /// Unless `detached`, the actor is killed once its ready object (creation's return, which
  /// every handle holds) is freed: when no handle to it remains in any process.
  Result<uint32_t> create_actor(TaskSpec creation, std::vector<ObjectID> deps,
                                int32_t max_restarts, int32_t max_task_retries, bool detached);
  /// Submits a method call to actor `spec.actor`: straight into the actor's ring when nothing
  /// of that actor waits in the scheduler and its arguments are sealed, else in order after
  /// what waits. Calls to a dead actor fail at once with ActorDiedError.
  void submit_actor_call(const TaskSpec& spec, std::vector<ObjectID> deps);
  /// Kills an actor's process; with `no_restart` it is not restarted (ember.kill).
  void kill_actor(uint32_t actor, bool no_restart);
  /// False once the actor is dead for good, or killed for good (and why it died, in `why`).
  bool actor_alive(uint32_t actor, std::string* why);

  /// Cancels the task whose return `ret` is: a queued task fails at once with
  /// TaskCancelledError; a running one is interrupted (SIGINT: KeyboardInterrupt in the task)
  /// or, with `force`, its worker is killed and the task not retried. Returns false if the task
  /// was not found (finished already).
  bool cancel(const ObjectID& ret, bool force, bool recursive = true);

  /// True while some task is queued or dispatched and not finished.
  bool busy();

  SchedulerStats stats();
  std::vector<int32_t> worker_pids();

  /// A finished task or actor call, for ember.timeline() (task_events.h).
  using TaskEvent = ember::TaskEvent;
  /// The last kMaxTaskEvents finished tasks, oldest first.
  std::vector<TaskEvent> task_events();

  /// An actor as introspection shows it (ember.util.state.list_actors()).
  struct ActorSummary {
    uint32_t id;
    std::string class_name;
    std::string state;   ///< PENDING_CREATION, ALIVE, RESTARTING or DEAD
    int32_t pid;         ///< its process (0 while there is none)
    std::string death;   ///< why it died ("" if alive)
    uint64_t pending_calls;  ///< calls waiting in the scheduler (not yet in its ring)
  };
  std::vector<ActorSummary> actors();

  /// A task not finished yet, for ember.util.state.list_tasks().
  struct TaskSummary {
    std::string name;
    ObjectID returns;       ///< its first return
    std::string state;      ///< PENDING_ARGS, PENDING_RESOURCES, BACKOFF, QUEUED_ON_WORKER, RUNNING
    int32_t worker_pid;     ///< RUNNING and QUEUED_ON_WORKER: the worker's process
    uint64_t running_ns;    ///< RUNNING: how long it has run
  };
  std::vector<TaskSummary> tasks();
  static constexpr size_t kMaxTaskEvents = 200'000;
  RuntimeControl* control() const { return rc_; }

 private:
  TaskRecord* record(uint32_t i) const;

  void loop();
  // One pass of the scheduler thread, under mu_; each step is one verb.
  /// Notices announced workers, and reaps the exited ones in `exits` (read before mu_).
  void reap_dead_workers(const std::vector<ExitNote>& exits);
  void collect_submissions();
  /// Cancels a dispatched task by its record (queued: never runs; running: interrupted or,
  /// with force, killed), then, if `recursive`, the tasks it submitted. False if it is done.
  bool cancel_record(uint32_t index, uint32_t gen, bool force, bool recursive, int depth);
  /// A dispatched task a worker holds: its record, generation and the worker.
  struct HeldRef {
    uint32_t index;
    uint32_t gen;
    uint32_t worker;
  };
  /// The dispatched tasks workers hold and have not finished, each once (a stolen task is in
  /// two workers' lists); actors' calls only with `with_actors`.
  std::vector<HeldRef> unfinished_refs(bool with_actors);
  /// Cancels every task submitted by the task of record (index, gen), and theirs.
  void cancel_children(uint32_t index, uint32_t gen, bool force, int depth);
  /// Spawns the workers dispatch_.start_workers() asks for.
  void start_workers();
  void retire_idle_workers();
  /// dispatch_.update_notify_flags(), knowing whether actors' calls wait.
  void update_notify_flags();
  /// Copies the node pool's amounts not leased to RuntimeControl::available, for workers.
  void publish_available();
  /// Placement groups asked for or removed since the last pass (placement.h); what ran in a
  /// removed one is killed.
  void collect_placement_groups();
  /// The dispatcher's pass; fails the queued tasks whose placement group is gone.
  void dispatch_queued();
  /// The error of a task whose placement group was removed.
  static std::string group_removed(const TaskSpec& spec);
  /// What read_memory_pressure() found: memory above the threshold, and the private memory
  /// of every worker running something then.
  struct WorkerMemory {
    uint32_t slot;
    int32_t pid;
    uint64_t private_bytes;
  };
  struct MemoryReading {
    MemorySnapshot memory;
    std::vector<WorkerMemory> workers;
  };
  /// Loop thread, without mu_: every memory_period_ms, reads the memory in use and, above the
  /// threshold, the workers' /proc/PID/statm. Nothing while a kill is pending.
  std::optional<MemoryReading> read_memory_pressure();
  /// Under mu_: kills the worker choose_oom_victim() picks among those of `reading`.
  void watch_memory(const MemoryReading& reading);
  /// Loop thread, without mu_: every ContentionWatch::kPeriodNs, sets the store's
  /// cpus_contended flag from how long the node's processes waited for a CPU (contention.h).
  void watch_contention();
  void finish_failed(const TaskSpec& spec, ErrorKind kind, const std::string& msg);
  /// cancel() under mu_, after the submissions were collected (a worker's cancel arrives so).
  bool cancel_locked(const ObjectID& ret, bool force, bool recursive);
  void fail_queue_after_startup_failures(const std::string& last);
  static constexpr uint32_t kMaxStartupFailures = 5;

  std::shared_ptr<Store> store_;
  SchedulerConfig cfg_;
  RuntimeControl* rc_ = nullptr;      ///< in the segment
  RuntimeLayout layout_;

  std::mutex mu_;                     ///< guards everything below, up to the loop's own
  std::vector<ObjectID> force_cancelled_;  ///< first returns of tasks killed by cancel()
  uint32_t startup_failures_ = 0;     ///< task workers in a row that died before announcing
  NodeResources resources_;           ///< the node's pool and the placement groups' (placement.h)
  TaskTable table_;                   ///< the records: free ones, generations (task_table.h)
  TaskEvents events_;                 ///< finished tasks, for ember.timeline()
  WorkerPool workers_;                ///< the slots: leases, rings, spawning (worker_pool.h)
  Dispatcher dispatch_;               ///< the queue and where each task goes (dispatch.h)
  ActorTable actors_;                 ///< actors and their waiting calls (actors.h)
  SchedulerStats stats_{};

  // Not guarded by mu_: the loop thread's own, or atomic (the header's invariants).
  uint64_t next_memory_check_ns_ = 0;       ///< when read_memory_pressure() looks next
  ContentionWatch contention_;              ///< its contended() is read by stats()
  /// A worker was killed for memory and is not reaped yet: set and cleared under mu_, read by
  /// read_memory_pressure() without it.
  std::atomic<bool> oom_kill_pending_{false};

  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace ember
