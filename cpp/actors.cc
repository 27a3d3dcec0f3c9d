// actors: creating, calling, restarting, killing and burying actors.
#include "actors.h"

#include "submission.h"

#include <signal.h>

#include <algorithm>
#include <cstring>

namespace ember {


ActorTable::ActorTable(Store& store, RuntimeControl* rc, WorkerPool& workers,
                       NodeResources& resources, TaskTable& table, TaskEvents& events,
                       Dispatcher& dispatch, Hooks hooks, ActorTiming timing)
    : store_(store), rc_(rc), workers_(workers), resources_(resources), table_(table),
      events_(events), dispatch_(dispatch), hooks_(std::move(hooks)),
      graceful_ns_(uint64_t{timing.graceful_shutdown_ms} * 1'000'000),
      retry_delay_ns_(uint64_t{timing.retry_delay_ms} * 1'000'000) {}

Status ActorTable::create(TaskSpec creation, std::vector<ObjectID> deps, int32_t max_restarts,
                          int32_t max_task_retries, bool detached, int64_t owner) {
  const int64_t w = workers_.free_slot();
  if (w < 0) {
    return Status(StatusCode::kInvalid, "cannot create actor " + std::string(creation.name) +
                                            ": all " + std::to_string(workers_.size()) +
                                            " worker slots are in use");
  }
  const uint32_t id = creation.actor;
  creation.flags |= kSpecActorCreate;
  ActorInfo& a = actors_[id];
  a.creation = creation;
  a.slot = static_cast<uint32_t>(w);
  a.restarts_left = max_restarts;
  a.max_task_retries = max_task_retries;
  a.detached = detached;
  a.out_of_order = (creation.flags & kSpecOutOfOrder) != 0;
  if (owner >= 0) {
    a.owner = owner;
    a.owner_generation = workers_.info(static_cast<uint32_t>(owner)).generation;
  }
  a.calls.push_back(ActorCall{{creation, std::move(deps)}, kEveryCaller});
  hold_creation(a.creation);  // A3: the actor's own, for re-running __init__ on restarts
  if (detached) a.holds_return = store_.add_ref(creation.returns, /*mine=*/false).ok();  // A6
  (void)workers_.spawn(a.slot, id);  // a forkserver that is gone: the node is shutting down
  ring_doorbell(rc_);
  return Status::OK();
}

void ActorTable::fail_creation(const TaskSpec& creation, const std::string& why) {
  ActorInfo& a = actors_[creation.actor];
  a.creation = creation;
  a.dead = true;
  a.death = why;
  mark_dead(creation.actor);
  hooks_.fail(creation, ErrorKind::kActorDied, why);
}

ActorInfo* ActorTable::find(uint32_t id) {
  auto it = actors_.find(id);
  return it == actors_.end() ? nullptr : &it->second;
}

void ActorTable::hold_creation(const TaskSpec& spec) { hold_inputs(store_, spec); }

void ActorTable::release_creation(const TaskSpec& spec) { release_inputs(store_, spec); }

void ActorTable::submit_call(ActorInfo& a, const TaskSpec& spec, std::vector<ObjectID> deps,
                             uint32_t caller) {
  if (a.dead) {
    hooks_.fail(spec, ErrorKind::kActorDied, a.death);
    return;
  }
  // A2: never before the creation; else, unless the actor runs calls as their arguments
  // come, never before a waiting call of the same caller.
  bool may_pass = a.calls.empty();
  if (!may_pass && (a.calls.front().spec.flags & kSpecActorCreate) == 0) {
    may_pass = a.out_of_order ||
               std::none_of(a.calls.begin(), a.calls.end(), [&](const ActorCall& p) {
                 return p.caller == caller || p.caller == kEveryCaller;
               });
  }
  if (may_pass && workers_.info(a.slot).state == WorkerState::kReady &&
      dispatch_.deps_ready(deps) && table_.has_free() && workers_.has_room(a.slot) &&
      dispatch_.push(a.slot, spec)) {
    dispatch_.count_direct();
    return;
  }
  a.calls.push_back(ActorCall{{spec, std::move(deps)}, caller});
  ring_doorbell(rc_);
}

void ActorTable::kill(uint32_t id, bool no_restart) {
  ActorInfo* a = find(id);
  if (a == nullptr || a->dead) return;
  if (no_restart) {
    a->no_restart = true;
    mark_dead(id);
    drop_return_hold(*a);  // now, not at the reap: the name is free for whoever asks next
  }
  const int32_t pid = workers_.pid(a->slot);
  if (pid > 0 && workers_.info(a->slot).state == WorkerState::kReady) {
    hooks_.signal(pid, SIGKILL);  // reap() finishes the job when the forkserver reports it
  } else {
    a->kill_when_ready = true;  // not up yet: killed as soon as it is (on_ready)
  }
}

void ActorTable::kill_placed_in(const std::vector<uint32_t>& groups, const std::string& cause) {
  for (auto& [id, a] : actors_) {
    if (a.dead || a.creation.placement_group == 0) continue;
    if (std::find(groups.begin(), groups.end(), a.creation.placement_group) == groups.end()) {
      continue;
    }
    a.death_cause = cause;
    kill(id, /*no_restart=*/true);
  }
}

void ActorTable::owner_died(uint32_t w, uint32_t generation) {
  for (auto& [id, a] : actors_) {
    if (a.dead || a.detached || a.owner != static_cast<int64_t>(w) ||
        a.owner_generation != generation) {
      continue;
    }
    a.death_cause = "its owner, the process that created it, died";
    kill(id, /*no_restart=*/true);
  }
}

bool ActorTable::owns_live_actor(uint32_t w) const {
  const uint32_t generation = workers_.info(w).generation;
  for (const auto& [id, a] : actors_) {
    if (!a.dead && !a.detached && a.owner == static_cast<int64_t>(w) &&
        a.owner_generation == generation) {
      return true;
    }
  }
  return false;
}

void ActorTable::mark_dead(uint32_t id) {
  if (id >= kTrackedActors) return;
  // release: a reader that sees the bit also sees the kill's effects published before it.
  rc_->dead_actors[id / 32].fetch_or(1u << (id % 32), std::memory_order_release);
}

void ActorTable::drop_return_hold(ActorInfo& a) {
  if (!a.holds_return) return;
  a.holds_return = false;
  store_.release_ref(a.creation.returns, /*mine=*/false);
}

void ActorTable::on_ready(uint32_t w) {
  const uint32_t id = workers_.info(w).actor;
  if (id == 0) return;
  ActorInfo& a = actors_[id];
  if (!a.kill_when_ready) return;
  a.kill_when_ready = false;
  hooks_.signal(workers_.pid(w), SIGKILL);
}

void ActorTable::dispatch_calls() {
  const uint64_t now = monotonic_ns();
  for (auto& [id, a] : actors_) {
    if (a.dead || workers_.info(a.slot).state != WorkerState::kReady) continue;
    std::vector<uint32_t> held_back;  // callers with a call that waits here (A2)
    auto it = a.calls.begin();
    while (it != a.calls.end()) {
      ActorCall& p = *it;
      if (!table_.has_free() || !workers_.has_room(a.slot)) break;
      const bool creation = (p.spec.flags & kSpecActorCreate) != 0;
      const bool behind = !a.out_of_order && std::find(held_back.begin(), held_back.end(),
                                                       p.caller) != held_back.end();
      // A9: a rerun waits out its delay.
      if (behind || p.not_before_ns > now || !dispatch_.deps_ready(p.deps)) {
        // A2: every call waits for the creation and for a rerun.
        if (creation || p.caller == kEveryCaller) break;
        if (!a.out_of_order && !behind) held_back.push_back(p.caller);  // and its own caller's
        ++it;  // other callers' calls (any, for an out-of-order actor) may go first
        continue;
      }
      if (creation) {
        // Creating needs its resources free now (Ray: 1 CPU to schedule an actor); it keeps
        // them only when asked for explicitly, and the hold's GPU ids are then its
        // CUDA_VISIBLE_DEVICES while it lives.
        if ((p.spec.flags & kSpecHoldResources) != 0) {
          if (!a.hold.held && !resources_.lease(a.hold, p.spec.resources, placement_of(p.spec),
                                                /*exclusive=*/false)) {
            break;
          }
        } else if (!resources_.fits(p.spec.resources, placement_of(p.spec))) {
          break;
        }
      }
      if (!dispatch_.push(a.slot, p.spec, creation ? a.hold.gpu_mask : 0)) break;
      it = a.calls.erase(it);
    }
  }
}

void ActorTable::kill_unreferenced() {
  const uint64_t now = monotonic_ns();
  for (auto& [id, a] : actors_) {
    if (a.end_deadline_ns != 0) {  // asked to end itself: still up at its deadline?
      const int32_t pid = workers_.pid(a.slot);
      if (now >= a.end_deadline_ns) {
        a.end_deadline_ns = 0;
        if (pid > 0 && workers_.info(a.slot).state == WorkerState::kReady) {
          hooks_.signal(pid, SIGKILL);
        }
      }
      continue;
    }
    if (a.dead || a.detached || a.no_restart) continue;
    if (store_.contains(a.creation.returns)) continue;
    // As in Ray, calls already submitted still run: end it once it has nothing left to do.
    if (!a.calls.empty() || workers_.info(a.slot).pushed != workers_.done(a.slot)) continue;
    a.no_restart = true;
    mark_dead(id);
    a.death_cause = "every handle to it went out of scope";
    const int32_t pid = workers_.pid(a.slot);
    if (pid > 0 && workers_.info(a.slot).state == WorkerState::kReady) {
      if (graceful_ns_ > 0 && ask_to_end(a)) {
        a.end_deadline_ns = now + graceful_ns_;
      } else {
        hooks_.signal(pid, SIGKILL);
      }
    } else {
      a.kill_when_ready = true;
    }
  }
}

bool ActorTable::ask_to_end(ActorInfo& a) {
  TaskSpec s{};
  // "Class.__ray_terminate__", the method's name after the last dot (the worker reads it so);
  // a class name too long for that leaves the method's name alone.
  const std::string method = "__ray_terminate__";
  std::string name = std::string(a.creation.name) + "." + method;
  if (name.size() >= sizeof s.name) name = method;
  std::memcpy(s.name, name.data(), name.size());
  s.function = a.creation.function;  // held by the actor (A3); the call takes its own hold
  s.returns = store_.new_id();        // its task id; it has no returns
  s.num_returns = 0;
  s.flags = kSpecActorMethod | kSpecNoArgs;
  s.actor = a.creation.actor;
  hold_inputs(store_, s);
  if (!dispatch_.push(a.slot, s, 0)) {
    release_inputs(store_, s);
    return false;
  }
  return true;
}

void ActorTable::reap(uint32_t w, const std::string& exit_why) {
  WorkerInfo& info = workers_.info(w);
  ActorInfo& a = actors_[info.actor];
  const bool intended =
      workers_.slot(w)->exit_intended.exchange(0, std::memory_order_acq_rel) != 0;
  const bool restart = !a.no_restart && !intended && a.restarts_left != 0;
  a.end_deadline_ns = 0;
  // The driver's reason first: an actor asked to end (A5) exits as exit_actor() does.
  const std::string why =
      a.no_restart && !a.death_cause.empty() ? a.death_cause
      : intended                             ? std::string("the actor called exit_actor()")
      : a.no_restart                         ? std::string("the actor was killed with ember.kill()")
                                             : exit_why;
  // Its unfinished calls, in the order they were pushed (its finished ones are freed).
  std::deque<ActorCall> unfinished;
  workers_.drain(w, table_, events_, [&](const TaskRef& ref, uint64_t c) {
    TaskSpec spec = table_.record(ref.index).spec;
    if ((spec.flags & kSpecActorCreate) != 0) {
      // An __init__ that never finished: drop its run's hold (a restart takes a new one).
      if (restart) {
        release_creation(spec);
      } else {
        hooks_.fail(spec, ErrorKind::kActorDied, "the actor died while starting: " + why);
      }
      return true;
    }
    const bool ran = claim_state(c) == TaskState::kRunning;
    const int32_t retries =
        (spec.flags & kSpecOwnRetries) != 0 ? spec.max_retries : a.max_task_retries;
    const bool retry =
        restart && (!ran || retries < 0 || static_cast<int32_t>(spec.attempt) < retries);
    if (retry) {
      if (ran) ++spec.attempt;
      unfinished.push_back(
          ActorCall{{spec, {}, ran ? monotonic_ns() + retry_delay_ns_ : 0}, kEveryCaller});
    } else if (restart) {  // as in Ray: the call may or may not have run; the actor comes back
      hooks_.fail(spec, ErrorKind::kActorUnavailable,
                  std::string("actor call ") + spec.name + " failed: " + why +
                      " The actor is restarting: it takes calls again once it is up.");
    } else {
      hooks_.fail(spec, ErrorKind::kActorDied,
                  std::string("actor call ") + spec.name + " failed: " + why);
    }
    return true;
  });
  resources_.end(a.hold);
  if (restart) {
    if (a.restarts_left > 0) --a.restarts_left;
    ++a.creation.attempt;  // the new process learns it is a restart (was_..._reconstructed)
    // Creation first, then the calls it had, then the ones that were waiting.
    for (auto it = unfinished.rbegin(); it != unfinished.rend(); ++it) a.calls.push_front(*it);
    hold_creation(a.creation);  // what this new run of __init__ will release
    a.calls.push_front(ActorCall{{a.creation, {}}, kEveryCaller});
    (void)workers_.spawn(w, info.actor);
    return;
  }
  a.dead = true;
  mark_dead(info.actor);
  a.death = "the actor " + std::string(a.creation.name) + " is dead: " + why;
  release_creation(a.creation);
  drop_return_hold(a);
  for (const ActorCall& p : a.calls) hooks_.fail(p.spec, ErrorKind::kActorDied, a.death);
  a.calls.clear();
  workers_.reset(w);
}

bool ActorTable::calls_waiting() const {
  for (const auto& [id, a] : actors_) {
    if (!a.dead && !a.calls.empty()) return true;
  }
  return false;
}

}  // namespace ember
