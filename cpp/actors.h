// actors: the driver's table of actors: creation, calls waiting for the actor's ring,
// restarts, kills, and the end of actors no handle refers to.
//
// Life of an actor
//   create() ── takes a free worker slot, spawns a process for it, queues the creation
//      │         (__init__) first in `calls`
//      ▼
//   dispatch_calls() ── once the process is up: the creation (needs its resources free now;
//      │                keeps them only with kSpecHoldResources), then the calls, in order
//      ▼
//   reap() ── its process ended: restart (the creation again, then the calls it had not
//             finished, then the waiting ones) while restarts are left and it was not killed
//             for good; else dead: every call waiting or unfinished fails with ActorDiedError
//
// Invariants
//   A1  An actor lives in one worker slot for its whole life (restarts reuse it); the slot's
//       WorkerInfo::actor names it, so the dispatcher never gives it tasks and never steals
//       from it.
//   A2  Calls from one caller (the process that submits them: the driver, or a worker slot)
//       run in submission order, and after the creation: submit_call() pushes straight into
//       the ring only when no call of that caller (nor the creation) waits in `calls` and its
//       arguments are sealed; otherwise the call queues. A waiting call holds up only its own
//       caller's later calls, as in Ray: a call of another caller whose arguments are ready
//       passes it. The creation and calls rerun after a restart (whose caller the ring does
//       not keep) hold up every call behind them. An actor made with kSpecOutOfOrder
//       (threaded and async actors, whose calls run concurrently anyway, as in Ray) keeps no
//       order among callers' calls: once its creation is in the ring, each call goes there as
//       soon as its arguments are sealed.
//   A3  The actor holds one count on its class and arguments for its life (to run __init__
//       again on a restart), and each run of the creation gets and releases its own count.
//   A4  A dead actor stays in the table (dead, with its reason), so later calls on a handle
//       fail with that reason rather than "no such actor".
//   A5  Unless detached, an actor whose creation return the store has freed (no handle left
//       anywhere) is ended for good once it has nothing left to run (Ray: submitted calls
//       still run): gracefully, as in Ray, by a __ray_terminate__ call pushed into its ring
//       (its __ray_shutdown__ and atexit handlers run), and SIGKILLed if its process is still
//       up `graceful_shutdown_ms` later (or at once when that is 0, or the push fails).
//   A6  A detached actor's creation return is held by the table while the actor lives, so
//       that any process finds it by name (ember.actor's registry) when no handle is left;
//       the hold goes when it is killed for good or dies for good.
//   A7  Unless detached, an actor fate-shares with its owner, the process that created it (as
//       in Ray): when a worker's process ends, the actors it owned are killed for good. A
//       task worker that owns a live actor is never retired while idle (owns_live_actor).
//   A8  An actor killed for good (no_restart) or dead for good has its bit set in
//       RuntimeControl::dead_actors (mark_dead; ids below kTrackedActors), so any process
//       tells it from a live one; only death sets a bit, so an actor a worker has just
//       created, still in that worker's ring, reads as alive.
//   A9  A call that was running when its actor died is run again after the restart only while
//       its attempts are within its retries: its own max_task_retries (kSpecOwnRetries, from
//       @method or .options()) or else the actor's, and not before `retry_delay_ms` from the
//       death (the calls behind it wait too, A2). A call that had not started always is.
//
// Thread safety: none; every call is made under the scheduler's mu_.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dispatch.h"
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

/// A call (or creation) waiting for the actor's ring, and who submitted it (A2).
struct ActorCall : Pending {
  uint32_t caller;  ///< kDriverCaller, 1 + the submitting worker's slot, or kEveryCaller
};
constexpr uint32_t kDriverCaller = 0;
constexpr uint32_t kEveryCaller = UINT32_MAX;  ///< the creation, reruns: all wait behind it

/// One actor as the driver tracks it.
struct ActorInfo {
  TaskSpec creation;                 ///< run again on each restart
  uint32_t slot = 0;                 ///< its worker slot (kept across restarts, A1)
  int32_t restarts_left = 0;         ///< -1: forever
  int32_t max_task_retries = 0;      ///< -1: forever
  bool dead = false;
  bool no_restart = false;           ///< killed with no_restart
  bool kill_when_ready = false;      ///< killed before its process was up
  bool detached = false;             ///< lives on when every handle is gone
  bool holds_return = false;         ///< the table holds its creation return (A6)
  bool out_of_order = false;         ///< made with kSpecOutOfOrder (A2)
  int64_t owner = -1;                ///< the worker slot that created it; -1: the driver (A7)
  uint32_t owner_generation = 0;     ///< that slot's process then
  std::string death_cause;           ///< set when the driver kills it for a reason
  std::string death;                 ///< why it died, for ActorDiedError
  uint64_t end_deadline_ns = 0;      ///< asked to end itself (A5): SIGKILL from then on
  Lease hold;                        ///< resources it keeps while it lives (and GPU ids)
  std::deque<ActorCall> calls;       ///< creation and calls not yet in its ring, in order
};

/// How long the actor table waits, in milliseconds (Ray's names in _system_config).
struct ActorTiming {
  uint32_t graceful_shutdown_ms = 0;  ///< for an unreferenced actor to end itself (A5)
  uint32_t retry_delay_ms = 0;        ///< before a call that ran is run again (A9)
};

class ActorTable {
 public:

  /// What the table does to the world outside the segment, passed in so a test can watch.
  struct Hooks {
    /// Fails a task: its returns become `kind` errors with `msg`, its holds are released.
    std::function<void(const TaskSpec&, ErrorKind, const std::string&)> fail;
    /// Sends `sig` to process `pid` (::kill).
    std::function<void(int32_t pid, int sig)> signal;
  };

  ActorTable(Store& store, RuntimeControl* rc, WorkerPool& workers, NodeResources& resources,
             TaskTable& table, TaskEvents& events, Dispatcher& dispatch, Hooks hooks,
             ActorTiming timing = {});

  /// Registers actor `creation.actor` (ids come from RuntimeControl::next_actor) in a free
  /// slot and spawns its process. kInvalid if every slot is in use.
  Status create(TaskSpec creation, std::vector<ObjectID> deps, int32_t max_restarts,
                int32_t max_task_retries, bool detached, int64_t owner = -1);
  /// An actor that could not be created: known as dead (A4), its creation return an error.
  void fail_creation(const TaskSpec& creation, const std::string& why);
  /// The actor, or nullptr if it was never created here.
  ActorInfo* find(uint32_t id);
  /// A method call from `caller` (A2); fails at once if the actor is dead.
  void submit_call(ActorInfo& actor, const TaskSpec& spec, std::vector<ObjectID> deps,
                   uint32_t caller = kDriverCaller);
  /// Kills the actor's process (now, or as soon as it is up); with `no_restart` for good.
  void kill(uint32_t id, bool no_restart);

  // The scheduler thread's verbs.
  /// Worker `w`, an actor's, announced itself: killed at once if it was killed while starting.
  void on_ready(uint32_t w);
  /// Pushes waiting creations and calls into the rings of actors that are up.
  void dispatch_calls();
  /// A5.
  void kill_unreferenced();
  /// Kills for good, with `cause`, the actors placed in any of `groups` (placement groups
  /// removed): their calls fail with ActorDiedError.
  void kill_placed_in(const std::vector<uint32_t>& groups, const std::string& cause);
  /// Worker `w`, an actor's, exited (`exit_why`: how, from its ExitNote): restart or bury.
  void reap(uint32_t w, const std::string& exit_why);
  /// The process of generation `generation` in slot `w` ended: its actors go (A7).
  void owner_died(uint32_t w, uint32_t generation);
  /// True if the process in slot `w` owns a live actor that fate-shares with it (A7).
  bool owns_live_actor(uint32_t w) const;

  /// True if some live actor has calls waiting for its ring (workers must ring after each).
  bool calls_waiting() const;
  const std::unordered_map<uint32_t, ActorInfo>& all() const { return actors_; }

 private:
  /// Takes / drops one count on a creation spec's class and arguments (A3).
  void hold_creation(const TaskSpec& spec);
  void release_creation(const TaskSpec& spec);
  /// Gives back the table's hold on a detached actor's creation return, once (A6).
  void drop_return_hold(ActorInfo& a);
  /// Publishes that actor `id` is killed or dead for good (RuntimeControl::dead_actors).
  void mark_dead(uint32_t id);
  /// Pushes a __ray_terminate__ call into the ring of `a`, which is up (A5); false if the
  /// ring or the task table has no room.
  bool ask_to_end(ActorInfo& a);

  Store& store_;
  RuntimeControl* rc_;
  WorkerPool& workers_;
  NodeResources& resources_;
  TaskTable& table_;
  TaskEvents& events_;
  Dispatcher& dispatch_;
  Hooks hooks_;
  uint64_t graceful_ns_;     ///< how long an unreferenced actor has to end itself (A5)
  uint64_t retry_delay_ns_;  ///< how long a call that ran waits to run again (A9)
  std::unordered_map<uint32_t, ActorInfo> actors_;  ///< by actor id
};

}  // namespace ember
