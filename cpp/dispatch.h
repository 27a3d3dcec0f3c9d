// dispatch: the queue of tasks waiting in the scheduler, and the choice of the worker each
// task goes to: leases, stealing for idle workers, stranded tasks, notify levels.
//
//   submit() ── nothing queued, deps sealed, 1 CPU ──► try_dispatch(direct) ──► worker ring
//            └─ else ──► queue_ ──► dispatch_queued() (scheduler thread) ──► try_dispatch()
//   idle worker ◄── steal_for_idle_workers(): a copy of a QUEUED ref from a busy worker's ring
//
// Where a task goes (try_dispatch)
//   A default task (1 CPU, nothing else): (a) an idle worker already holding a default lease;
//   (b) an idle worker that can lease 1 CPU now; (c) the least loaded worker holding a
//   default lease with room in its ring, up to kDepth tasks deep (kDeepDepth behind a queue of
//   kQueueLookahead or more). Any other task: an idle worker with no lease, leasing exactly
//   what the task needs ("exclusive": nothing else joins it; its GPU ids go in the record).
//
// Invariants
//   D1  Default tasks leave the queue in FIFO order: when one cannot go, no default task
//       behind it overtakes it; tasks with other resources may (they may fit where it does
//       not). queued_special_ counts the non-default entries, so a queue of default tasks
//       alone stops at its head; enqueue()/dequeue() are the only ways in and out, and keep it.
//   D2  A task goes straight from the submitting thread (direct) only when nothing is queued
//       (so submission order holds) and its deps are sealed.
//   D3  A task is never left waiting behind another while a worker that could run it idles:
//       an idle worker gets a copy of a victim's oldest QUEUED default ref, and the claim CAS
//       (task.h) lets exactly one of them run it. Non-default tasks never move: their lease
//       (GPU ids, custom resources) is where they were pushed.
//   D4  A worker's lease is drawn once, by whichever of try_dispatch() (b), its exclusive
//       branch or the steal comes first, and ended by release_idle_leases() once the worker
//       has finished everything pushed to it (or by the reaper).
//   D5  A default task in a ring that no worker is about to claim (behind a running task, or
//       in a blocked worker's ring) counts as wanting a worker, like a queued one, as far as
//       the resources not leased allow (count_stranded): a blocked worker lent its CPU back,
//       so a nested get() always frees the CPU its child needs.
//   D6  As in Ray, a worker's first task decides which tasks it runs from then on: those
//       that use GPUs, or those that do not (a process that imported a GPU library for one
//       kind would carry its CUDA state into the other). push() records it; every choice of
//       a worker checks it (takes()), and start_workers() counts idle workers per kind, so a
//       task never waits for a worker of the other kind to come free.
//
// Thread safety: none; every call is made under the scheduler's mu_.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "placement.h"
#include "queued_spec.h"
#include "resources.h"
#include "store.h"
#include "task.h"
#include "task_events.h"
#include "task_table.h"
#include "worker_pool.h"

namespace ember {

/// A task waiting in the scheduler (its queue, or an actor's calls): 128 bytes, plus a tail
/// for the rare parts (queued_spec.h), so that a million queued tasks fit in the node's
/// memory target.
struct Pending {
  Pending(const TaskSpec& s, std::vector<ObjectID> d = {}, uint64_t not_before = 0)
      : spec(s), deps(std::move(d)), not_before_ns(not_before) {}
  QueuedSpec spec;
  std::vector<ObjectID> deps;  ///< top-level ref arguments not seen sealed yet
  uint64_t not_before_ns = 0;  ///< a retry after an OOM kill waits out its backoff
};
// Four to a 512-byte block of std::deque (libstdc++): the queue's memory per task.
static_assert(sizeof(Pending) <= 128);

/// True for a spec (TaskSpec or QueuedSpec) of the default request, 1 CPU from the node (a
/// task placed in a placement group leases from its bundle: placement.h).
template <typename Spec>
bool is_default(const Spec& spec) {
  return is_default_request(spec.resources) && spec.placement_group == 0;
}

/// Counters of what dispatch did, for SchedulerStats.
struct DispatchStats {
  uint64_t dispatched = 0;  ///< tasks pushed to workers
  uint64_t direct = 0;      ///< of which from the submitting thread (or straight to an actor)
  uint64_t stolen = 0;      ///< copies pushed to move a waiting task to an idle worker
};

class Dispatcher {
 public:
  /// Default tasks a worker may hold at once (one running, the rest queued in its ring).
  static constexpr uint64_t kDepth = 4;
  /// The same behind a queue of kQueueLookahead default tasks or more: a worker rings the
  /// scheduler when its ring is nearly empty, and each pass of the scheduler costs ~5-20 us,
  /// so refilling 4 at a time made the scheduler thread a third of the CPU of a 1M-task
  /// queue (8.5 us per task). A task stuck behind a long one is stolen as before (D3).
  static constexpr uint64_t kDeepDepth = 16;
  /// How far into the queue the per-pass bookkeeping (workers to start, notify level) looks,
  /// and how often start_workers() looks at all of it.
  static constexpr size_t kQueueLookahead = 256;
  static constexpr uint64_t kQueueScanPeriodNs = 10'000'000;

  Dispatcher(Store& store, RuntimeControl* rc, WorkerPool& workers, NodeResources& resources,
             TaskTable& table, TaskEvents& events);

  /// A task from the driver: straight to a worker (D2), else queued, raising the notify
  /// level and ringing the scheduler unless it waits behind a long queue of default tasks.
  void submit(const TaskSpec& spec, std::vector<ObjectID> deps);
  /// The only ways into and out of the queue (D1).
  void enqueue(Pending p, bool front = false);
  std::deque<Pending>::iterator dequeue(std::deque<Pending>::iterator it);
  /// Empties the queue (its tasks must have been failed first).
  void clear();
  const std::deque<Pending>& queue() const { return queue_; }
  std::deque<Pending>& queue() { return queue_; }

  /// Drops the sealed ones from `deps` (each is checked until seen sealed once); true if none
  /// is left.
  bool deps_ready(std::vector<ObjectID>& deps);
  /// Pushes `spec` to worker `w` in a new record (reclaiming finished records first if none
  /// is free); false, with nothing changed, if no record is free or its ring is full.
  bool push(uint32_t w, const TaskSpec& spec, uint32_t gpu_mask = 0);
  /// Pushes `spec` to the worker chosen as in the header (leasing for it); false if none can
  /// take it now. `direct`: counted as a direct submission.
  bool try_dispatch(const TaskSpec& spec, bool direct);

  // The scheduler thread's verbs, in the order of a pass.
  /// Leases of blocked workers go back to the pool; those of workers running again come out.
  void lend_blocked_leases();
  /// D3.
  void steal_for_idle_workers();
  /// The queue's runnable tasks to workers, FIFO for default tasks (D1). Returns the tasks
  /// placed in a placement group that is gone: out of the queue, for the caller to fail.
  std::vector<Pending> dispatch_queued();
  /// Ends the leases of workers that finished everything pushed to them (D4), and frees
  /// finished records (actors' too).
  void release_idle_leases();
  /// How many task workers are up, and how many more the queue and the stranded tasks want.
  struct Demand {
    uint32_t alive;     ///< task workers ready
    uint32_t to_start;  ///< workers to spawn
  };
  Demand start_workers();
  /// Default tasks in workers' rings that no worker is about to claim (D5), as many as `avail`
  /// has resources for (taken from it).
  uint32_t count_stranded(int64_t* avail) const;
  /// Sets RuntimeControl::notify: 2 if someone waits on every result (deps, exclusive or lent
  /// leases, or `actor_calls_waiting`), 1 if work waits for room in a ring, else 0.
  void update_notify_flags(bool actor_calls_waiting);

  const DispatchStats& stats() const { return stats_; }
  /// D6: whether worker `w` may run a task that uses GPUs (`gpus`) or one that does not.
  bool takes(uint32_t w, bool gpus) const {
    const int8_t kind = workers_.info(w).gpu;
    return kind < 0 || (kind == 1) == gpus;
  }
  /// A direct push to an actor's ring counts with the direct submissions.
  void count_direct() { ++stats_.direct; }

 private:
  Store& store_;
  RuntimeControl* rc_;
  WorkerPool& workers_;
  NodeResources& resources_;
  TaskTable& table_;
  TaskEvents& events_;

  std::deque<Pending> queue_;        ///< submitted, not yet dispatched (FIFO for defaults, D1)
  size_t queued_special_ = 0;        ///< of which not default tasks
  uint64_t next_queue_scan_ns_ = 0;  ///< start_workers() looks at the whole queue then
  DispatchStats stats_;
};

}  // namespace ember
