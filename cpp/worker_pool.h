// worker_pool: the driver's view of the worker slots: what each process holds, spawning one
// through the forkserver, noticing it announce itself or exit, and retiring idle extras.
//
// Life of a slot (WorkerState, task.h; `info` is the driver's copy, `slot` the segment's)
//
//   kUnused ──spawn()──► kStarting ──worker announce()──► kReady ──forkserver reaps──► kExited
//      ▲                 (request in the spawn ring)                                     │
//      └───────────────────────── reset(), by the scheduler's reaper ◄───────────────────┘
//
//   The driver writes slot->state only for kStarting (spawn) and kUnused (reset); the worker
//   writes kReady, the forkserver kExited. `info.state` follows with a delay: it becomes kReady
//   when the scheduler notices the announce (mark_ready()) and kUnused on reset().
//
// Invariants
//   P1  A slot has at most one request in the spawn ring: spawn() is called only for a kUnused
//       slot, and the forkserver pops the request before the process can exit. The ring holds
//       kSpawnCapacity >= max_workers requests, so spawn() never waits: a full ring means the
//       forkserver stopped reading (the node is going down), and the slot stays kUnused.
//   P2  `pushed - done` is what a worker still has to look at; has_room() keeps it below
//       kInboundCapacity - kRoomMargin, so a push of a checked slot cannot fail (the margin
//       covers stolen copies pushed after the check) unless the consumer is wedged. For an
//       actor's slot it keeps `pushed - taken` (what is still in the ring) below that instead:
//       an actor may run any number of calls at once (its max_concurrency), and counting the
//       running ones would stop the calls they wait for from ever being pushed.
//   P3  `assigned` lists every TaskRef pushed and not yet seen finished, in push order; a
//       record is freed (reclaim()) only from the front, once DONE, so a worker's refs are
//       freed in the order it runs them; when its process is gone, drain() frees the rest
//       (the finished ones too: a worker that dies right after finishing leaks nothing).
//   P4  read_exits() reads only the segment's atomics and the workers' log files, never `info`:
//       the scheduler calls it before taking its lock, so reading a log tail (up to 40 lines,
//       read from the end of the file) never holds up submit() (see scheduler.h).
//   P5  A retired worker (an idle extra beyond num_cpus, or one that asked to go: max_calls)
//       is never pushed to (is_idle() is false for it) and is not replaced when it exits.
//       One that asked is retired as soon as it is idle, whatever num_cpus; until then it runs
//       what it was pushed already.
//
// Crash story: a worker that dies leaves its slot kExited with a wait status; its rings may be
// wedged mid-pop. The reaper retries or fails what it held, and spawn() re-creates both rings
// before the slot is used again.
//
// Thread safety: everything but read_exits() runs under the scheduler's lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "resources.h"
#include "task.h"
#include "task_events.h"
#include "task_table.h"

namespace ember {

/// The driver's record of one worker slot.
struct WorkerInfo {
  uint32_t generation = 0;              ///< of the process we track in this slot
  WorkerState state = WorkerState::kUnused;
  uint64_t pushed = 0;                  ///< TaskRefs pushed to its inbound ring
  Lease lease;                          ///< resources it holds (resources.h)
  uint32_t actor = 0;                   ///< the actor living in this slot; 0: a task worker
  /// What its first task made it (D6 of dispatch.h): -1 nothing run yet, 0 a worker for
  /// tasks without GPUs, 1 one for tasks with GPUs.
  int8_t gpu = -1;
  bool retiring = false;                ///< an idle extra worker being stopped (P5)
  uint64_t idle_since_ns = 0;           ///< when it last became idle (0: it is not)
  std::string oom;                      ///< set when the memory monitor killed it: why
  std::deque<TaskRef> assigned;         ///< pushed, not yet seen finished (P3)
};

/// A worker that exited, as read before the scheduler takes its lock (P4).
struct ExitNote {
  uint32_t slot;
  uint32_t generation;  ///< of the process that exited
  int32_t pid;
  int32_t status;       ///< raw wait status
  std::string why;      ///< describe_exit(): how it ended and its last output
};

/// "worker pid=N killed by signal 9 (SIGKILL)." plus the last 40 lines of its .err file (or
/// of its .out file if .err has none).
std::string describe_exit(const std::string& log_dir, int32_t status, int32_t pid);

/// The last `n` lines of a text file, each as "    line\n", without the worker's task-name
/// markers ("" if unreadable). Reads from the end, so a huge log costs what its tail does.
std::string tail_lines(const std::string& path, int n);

class WorkerPool {
 public:
  /// Slots of the runtime region `rc` laid out by `layout`; keeps `num_cpus` task workers.
  WorkerPool(RuntimeControl* rc, const RuntimeLayout& layout, uint32_t max_workers,
             uint32_t num_cpus);

  uint32_t size() const { return max_workers_; }
  /// 1 + the highest slot ever spawned: loops over busy slots stop here.
  uint32_t used() const { return used_.load(std::memory_order_relaxed); }
  WorkerSlot* slot(uint32_t w) const { return slots_ + w; }
  WorkerInfo& info(uint32_t w) { return info_[w]; }
  const WorkerInfo& info(uint32_t w) const { return info_[w]; }

  /// TaskRefs worker `w` has finished with (acquire: its results are visible).
  uint64_t done(uint32_t w) const { return slots_[w].done.load(std::memory_order_acquire); }
  /// True while its task waits in get()/wait().
  bool blocked(uint32_t w) const {
    return slots_[w].blocked.load(std::memory_order_relaxed) != 0;
  }
  int32_t pid(uint32_t w) const { return slots_[w].pid.load(std::memory_order_relaxed); }
  /// A task worker that is up, has nothing to do and is not blocked: it may take work.
  bool is_idle(uint32_t w) const;
  /// True if `w` is being retired, or asked to be (max_calls): it is pushed nothing more.
  bool retiring(uint32_t w) const;
  /// Room for one more TaskRef in its ring (P2).
  bool has_room(uint32_t w) const;
  /// Pushes `ref` into worker `w`'s ring and lists it as assigned; false if the ring is full
  /// (a wedged consumer: the caller keeps the task).
  [[nodiscard]] bool push(uint32_t w, TaskRef ref);
  /// Frees the records of `w`'s finished refs, oldest first, up to the first unfinished one
  /// (P3), recording each finished task in `events`.
  void reclaim(uint32_t w, TaskTable& table, TaskEvents& events);
  /// Empties the list of worker `w`, whose process is gone. A finished record is freed as
  /// reclaim() frees it; for every other current one, `fn(ref, claim)` decides: true frees
  /// the record (fn copied what it needs first), false leaves it to the worker whose copy
  /// runs it. Stale refs are dropped. So no record it held is lost (P3).
  template <typename Fn>
  void drain(uint32_t w, TaskTable& table, TaskEvents& events, Fn&& fn) {
    std::deque<TaskRef> refs;
    refs.swap(info_[w].assigned);
    for (const TaskRef& ref : refs) {
      const uint64_t c = table.claim(ref.index);
      if (claim_gen(c) != ref.gen) continue;
      if (table.finished_by(ref, w)) {  // DONE, or it died giving back the inputs (T5)
        events.record(table.record(ref.index));
        table.free(ref.index);
      } else if (fn(ref, c)) {
        table.free(ref.index);
      }
    }
  }

  /// Asks the forkserver for a process in unused slot `w`, for actor `actor` (0: a task
  /// worker). Fresh rings and counters first. False if the forkserver is gone (P1).
  [[nodiscard]] bool spawn(uint32_t w, uint32_t actor = 0);
  /// The lowest unused slot, or -1.
  int64_t free_slot() const;
  /// Processes asked for since the start (SchedulerStats::workers_started).
  uint64_t started() const { return started_; }
  /// Task workers starting or running (not actors).
  uint32_t task_workers() const;
  /// Notices that `w`'s process announced itself (slot kReady while info says kStarting).
  bool announced(uint32_t w) const;
  void mark_ready(uint32_t w) { info_[w].state = WorkerState::kReady; }
  /// Forgets slot `w`'s process: info cleared, slot kUnused (its lease must be ended first).
  void reset(uint32_t w);

  /// Exited workers, read without the scheduler's lock (P4).
  std::vector<ExitNote> read_exits(const std::string& log_dir) const;
  /// Marks idle task workers beyond num_cpus that have idled for `idle_ns` as retiring and
  /// returns their pids, to be killed (P5).
  /// `keep(w)`: a worker that must not go even so (it owns a live actor, actors.h A7).
  std::vector<int32_t> retire_idle(uint64_t now, uint64_t idle_ns,
                                   const std::function<bool(uint32_t)>& keep = {});

  /// Margin of has_room() (P2).
  static constexpr uint64_t kRoomMargin = 4;

 private:
  RuntimeControl* rc_;
  WorkerSlot* slots_;
  uint32_t max_workers_;
  uint32_t num_cpus_;
  std::atomic<uint32_t> used_{0};  ///< read by read_exits() without the lock
  uint64_t started_ = 0;
  std::vector<WorkerInfo> info_;
};

}  // namespace ember
