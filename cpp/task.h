// task: the shared-memory layout of the task runtime (specs, records, worker slots).
//
// Invariants:
//  - Everything here lives in the segment's runtime region, is trivially copyable or atomic,
//    and is addressed by index, never by pointer.
//  - A TaskRecord is allocated and freed only by the driver (the scheduler's lock). Its
//    `claim` word decides who runs it: a worker runs a record only after a successful CAS
//    from (gen, QUEUED) to (gen, RUNNING, worker). The driver may push the same TaskRef to
//    several workers (to move a task off a worker that is busy or blocked); the CAS makes sure
//    exactly one of them runs it, and a stale TaskRef (older gen) never matches.
//  - A worker slot's inbound ring is filled by the driver's threads and drained by that
//    worker only; its outbound ring (nested submissions) is filled by that worker only and
//    drained by the scheduler thread only. A worker that dies wedges at most its own rings;
//    the scheduler re-creates them before the slot is reused.
//  - `done` counts TaskRefs the worker has finished with (run or skipped): the driver's
//    `pushed` minus `done` is what the worker still has to look at.
#pragma once

#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "futex.h"
#include "object_table.h"
#include "ring.h"

namespace ember {

inline constexpr uint32_t kMaxResources = 8;       ///< CPU, GPU, then custom resources
inline constexpr uint32_t kResourceCPU = 0;
inline constexpr uint32_t kResourceGPU = 1;
inline constexpr int64_t kResourceUnit = 10000;    ///< amounts are in 1/10000ths (as Ray)
inline constexpr uint32_t kMaxDeps = 6;            ///< deps carried by a nested submission
/// A worker writes this, then the task's name, on a line of its log files before each task's
/// output, so the log printer (ember._logs) and a crash's log tail can tell tasks apart.
inline constexpr char kTaskLogMarker[] = "\x1e:task:";
inline constexpr uint32_t kInlineArgs = 176;       ///< args this small travel in the spec
inline constexpr uint32_t kInboundCapacity = 64;
inline constexpr uint32_t kOutboundCapacity = 32;
inline constexpr uint32_t kSpawnCapacity = 256;  ///< >= max_workers: a spawn never waits

/// TaskSpec flags.
enum SpecFlags : uint32_t {
  kSpecArgsInline = 1,       ///< args are in `args_inline`, else in the `args` object
  kSpecRetryExceptions = 2,  ///< an exception in the task is retried like a crash
  kSpecNoArgs = 4,           ///< f() with no arguments at all
  kSpecActorCreate = 8,      ///< creates actor `actor` (function: the class)
  kSpecActorMethod = 16,     ///< calls a method of actor `actor` (name: "Class.method")
  kSpecHoldResources = 32,   ///< an actor that keeps its resources while it lives
  kSpecActorKill = 64,       ///< from a worker: kill actor `actor` (max_retries 1: no restart)
  kSpecDetached = 128,       ///< with kSpecActorCreate: the actor outlives its handles
  kSpecStreaming = 256,      ///< a streaming generator: its items are a stream (store.h)
  kSpecDynamic = 512,        ///< num_returns="dynamic": one return listing the items
  kSpecCancel = 1024,        ///< from a worker: cancel the task that returns `returns`
                             ///< (max_retries: kCancelForce | kCancelRecursive)
  kSpecOutOfOrder = 2048,    ///< with kSpecActorCreate: each call goes to the actor as soon as
                             ///< its arguments are ready, not behind earlier calls (actors.h A2)
  kSpecCaptureChildTasks = 4096,  ///< with a placement group: the tasks it submits go there too
  kSpecPlaced = 8192,        ///< placement_group is set (so a worker need not read the spec)
  kSpecRenamedCall = 16384,  ///< with kSpecActorMethod: a call .options() named (name=) or
                             ///< gave exception classes (retry_exceptions=[...]); `name` is its
                             ///< name, `function` an object holding the method's (and those)
  kSpecOwnRetries = 32768,   ///< with kSpecActorMethod: `max_retries` is the call's own
                             ///< max_task_retries (@method, .options()), not the actor's
};

/// kSpecCancel's bits in TaskSpec::max_retries.
inline constexpr int32_t kCancelForce = 1;
inline constexpr int32_t kCancelRecursive = 2;

/// What to run: written once by the submitter, read by the worker.
struct TaskSpec {
  ObjectID function;                 ///< the pickled function, in the store
  ObjectID returns;                  ///< first return id; return i is {hi, lo + i}
  ObjectID args;                     ///< the pickled (args, kwargs) when not inline
  ObjectID deps[kMaxDeps];           ///< top-level ref arguments to wait for (nested only)
  uint32_t num_returns;
  uint32_t num_deps;
  int32_t max_retries;               ///< -1: forever
  uint32_t flags;                    ///< SpecFlags
  uint32_t args_inline_len;
  uint32_t attempt;                  ///< 0 on the first run
  int64_t resources[kMaxResources];  ///< in kResourceUnit
  uint32_t actor;                    ///< the actor id, for actor creations and calls
  union {
    int32_t max_task_retries;        ///< an actor creation's (max_retries: its max_restarts)
    int32_t concurrency_group;       ///< an actor call's: 1 + its group's index, 0: the method's
    int32_t max_calls;               ///< a task's: its worker retires after this many calls of
                                     ///< its function (0: never)
  };
  uint32_t parent_index;             ///< 1 + the record of the task that submitted this one
  uint32_t parent_gen;               ///< (0: the driver did) and its generation then
  uint32_t placement_group;          ///< the group it is placed in (0: none; placement.h)
  int32_t bundle_index;              ///< that group's bundle (-1: any that fits)
  char name[80];                     ///< the task name (logs, errors); "Class.method" for calls
  uint8_t args_inline[kInlineArgs];
};
static_assert(std::is_trivially_copyable_v<TaskSpec>);
static_assert(sizeof(TaskSpec) == 512);

enum class TaskState : uint32_t { kFree = 0, kQueued = 1, kRunning = 2, kDone = 3 };

/// The claim word: generation (high 32 bits), worker slot (bits 8-31), state (bits 0-7).
inline uint64_t make_claim(uint32_t gen, uint32_t worker, TaskState st) {
  return (uint64_t{gen} << 32) | (uint64_t{worker} << 8) | static_cast<uint32_t>(st);
}
inline uint32_t claim_gen(uint64_t c) { return static_cast<uint32_t>(c >> 32); }
inline uint32_t claim_worker(uint64_t c) { return static_cast<uint32_t>(c >> 8) & 0xFFFFFF; }
inline TaskState claim_state(uint64_t c) { return static_cast<TaskState>(c & 0xFF); }

/// CLOCK_MONOTONIC in nanoseconds: the clock of TaskRecord's times, the same in every process.
inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

/// A dispatched task, in the segment.
struct alignas(64) TaskRecord {
  std::atomic<uint64_t> claim;  ///< see make_claim
  uint64_t started_ns;          ///< CLOCK_MONOTONIC, written by the worker
  uint64_t finished_ns;
  uint32_t gpu_mask;            ///< GPUs assigned (bit i: GPU i), for CUDA_VISIBLE_DEVICES
  int32_t worker_pid;
  /// 1 once the worker that runs it gives back its inputs' holds (its results all sealed);
  /// 0 from each publish (task_table.h, T5).
  std::atomic<uint32_t> inputs_released;
  /// 1 if the task raised (its first return is its error), set by its worker before it
  /// finishes; 0 from each publish. For list_tasks()'s FAILED (task_events.h).
  std::atomic<uint32_t> failed;
  /// 1 once ember.cancel() asked for the running task to stop (set before its worker's
  /// SIGINT), for get_runtime_context().is_canceled(); 0 from each publish.
  std::atomic<uint32_t> cancel_requested;
  TaskSpec spec;
};

/// What travels through a worker's inbound ring.
struct TaskRef {
  uint32_t index;  ///< record index
  uint32_t gen;    ///< record generation when pushed
};

/// The life of a worker slot.
enum class WorkerState : uint32_t {
  kUnused = 0,
  kStarting = 1,  ///< the scheduler asked the forkserver for a process
  kReady = 2,     ///< the worker attached and waits for tasks
  kExited = 3,    ///< the forkserver reaped it; `exit_status` says how
};

/// One worker process's corner of the segment.
struct alignas(64) WorkerSlot {
  std::atomic<uint32_t> state;        ///< WorkerState
  std::atomic<int32_t> pid;
  std::atomic<int32_t> exit_status;   ///< raw wait status, set by the forkserver
  std::atomic<uint32_t> blocked;      ///< 1 while its task waits in get()
  std::atomic<uint64_t> done;         ///< TaskRefs finished with (run or skipped)
  std::atomic<uint64_t> taken;        ///< TaskRefs popped from `inbound` (run, running or skipped)
  std::atomic<uint32_t> current;      ///< record index + 1 of the running task; 0: none
  std::atomic<uint32_t> generation;   ///< bumped each time the slot gets a new process
  std::atomic<uint32_t> exit_intended;  ///< 1: an actor that called exit_actor()
  std::atomic<uint32_t> retire_asked;   ///< 1: a task worker done with its calls (max_calls):
                                        ///< push it nothing more, retire it once idle
  Ring<TaskRef, kInboundCapacity> inbound;
  Ring<TaskSpec, kOutboundCapacity> outbound;
};

/// A request to the forkserver.
struct SpawnRequest {
  uint32_t slot;
  uint32_t generation;
  uint32_t actor;  ///< 1: the process will host an actor (the forkserver preloads its runtime)
};

inline constexpr uint32_t kMaxPlacementGroups = 128;  ///< groups alive at once on a node
inline constexpr uint32_t kMaxBundles = 32;           ///< bundles of one group

enum class GroupState : uint32_t {
  kFree = 0,       ///< unused (or its group removed: its generation moved on)
  kWriting = 1,    ///< a requester is filling it
  kRequested = 2,  ///< filled; the scheduler has not seen it yet
  kPending = 3,    ///< seen; waits until its bundles fit
  kCreated = 4,    ///< its bundles are reserved
  kRemoved = 5,    ///< only as an answer of group_state(): the group is gone
};

/// A placement group as asked for, in the runtime region (after the task records; its
/// protocol: placement.h).
struct alignas(64) GroupSlot {
  std::atomic<uint32_t> state;       ///< GroupState
  std::atomic<uint32_t> generation;  ///< bumped by each request that takes the slot
  std::atomic<uint32_t> remove;      ///< the generation a process asked to remove (0: none)
  uint32_t strategy;                 ///< GroupStrategy
  uint32_t num_bundles;
  std::atomic<uint64_t> created_ns;  ///< CLOCK_MONOTONIC when reserved (0: not yet)
  uint64_t requested_ns;
  int64_t bundles[kMaxBundles][kMaxResources];  ///< in kResourceUnit
};

/// Actor ids whose death any process can read (RuntimeControl::dead_actors); a later id reads
/// as alive (a named actor's lookup then trusts its ready object, as before).
inline constexpr uint32_t kTrackedActors = 1u << 20;

/// The runtime's shared control block: the start of the runtime region.
struct alignas(64) RuntimeControl {
  std::atomic<uint32_t> doorbell;       ///< futex word the scheduler sleeps on
  std::atomic<uint32_t> sched_asleep;   ///< 1 while the scheduler sleeps (ring it then)
  std::atomic<uint32_t> notify;         ///< 1: workers ring the doorbell when (nearly) idle
  std::atomic<uint32_t> shutting_down;  ///< 1 once the driver shuts the node down
  std::atomic<uint32_t> next_actor;     ///< the next actor id (any process may create actors)
  std::atomic<uint64_t> group_requests;  ///< bumped by each placement group request (placement.h)
  uint32_t max_workers;
  uint32_t task_capacity;
  int64_t totals[kMaxResources];        ///< the node's resources, in kResourceUnit
  /// The node's resources not leased, as of the scheduler's last round (written by it only;
  /// workers read it for available_resources(), which Ray too gives as of a recent moment).
  std::atomic<int64_t> available[kMaxResources];
  char resource_names[kMaxResources][32];
  /// Bit `id` set once actor `id` is killed or dead for good (written by the scheduler only;
  /// read by any process: a worker's get_actor() must not find a dead actor by its name, and
  /// one created a moment ago by another worker, not yet seen by the scheduler, is alive).
  std::atomic<uint32_t> dead_actors[kTrackedActors / 32];
  Ring<SpawnRequest, kSpawnCapacity> spawn;  ///< scheduler -> forkserver
};

/// Where the pieces of the runtime region are, for `max_workers` and `task_capacity`.
struct RuntimeLayout {
  uint64_t slots_at;
  uint64_t records_at;
  uint64_t groups_at;
  uint64_t size;
  RuntimeLayout(uint32_t max_workers, uint32_t task_capacity)
      : slots_at((sizeof(RuntimeControl) + 4095) / 4096 * 4096),
        records_at(slots_at + uint64_t{max_workers} * sizeof(WorkerSlot)),
        groups_at(records_at + uint64_t{task_capacity} * sizeof(TaskRecord)),
        size((groups_at + kMaxPlacementGroups * sizeof(GroupSlot) + 4095) / 4096 * 4096) {}
};

/// Rings the scheduler's doorbell (from any process): wakes it only if it sleeps.
inline void ring_doorbell(RuntimeControl* rc) {
  // seq_cst: Dekker pair with the scheduler, which sets sched_asleep (seq_cst) and then
  // re-checks for work; either it sees our work or we see its flag.
  rc->doorbell.fetch_add(1, std::memory_order_seq_cst);
  if (rc->sched_asleep.load(std::memory_order_seq_cst) != 0) {
    futex_wake(&rc->doorbell, 1);
  }
}

}  // namespace ember
