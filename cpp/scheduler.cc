// Scheduler: the coordinator: the public API, the scheduler thread's loop, reaping dead
// workers (retry or fail what they held), cancel, and the summaries.
#include "scheduler.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "contention.h"
#include "object_io.h"
#include "memory_monitor.h"
#include "submission.h"

namespace ember {

namespace {

/// How long the scheduler thread sleeps when nothing rings it (housekeeping period).
constexpr int64_t kIdleSleepNs = 50'000'000;
/// How long a worker beyond num_cpus may idle before it is retired (Ray: 1 s).
constexpr uint64_t kIdleWorkerRetireNs = 1'000'000'000;
/// The longest backoff before retrying a task killed for memory.
constexpr uint64_t kMaxOomRetryDelayMs = 60'000;

}  // namespace

Scheduler::Scheduler(std::shared_ptr<Store> store, SchedulerConfig cfg)
    : store_(std::move(store)),
      cfg_(std::move(cfg)),
      rc_(reinterpret_cast<RuntimeControl*>(store_->runtime_region())),
      layout_(cfg_.max_workers, cfg_.task_capacity),
      resources_(rc_, cfg_.totals,
                 reinterpret_cast<GroupSlot*>(reinterpret_cast<uint8_t*>(rc_) + layout_.groups_at)),
      table_(reinterpret_cast<TaskRecord*>(reinterpret_cast<uint8_t*>(rc_) + layout_.records_at),
             cfg_.task_capacity),
      events_(kMaxTaskEvents),
      workers_(rc_, layout_, cfg_.max_workers, cfg_.num_cpus),
      dispatch_(*store_, rc_, workers_, resources_, table_, events_),
      actors_(*store_, rc_, workers_, resources_, table_, events_, dispatch_,
              ActorTable::Hooks{
                  [this](const TaskSpec& spec, ErrorKind kind, const std::string& msg) {
                    finish_failed(spec, kind, msg);
                  },
                  [](int32_t pid, int sig) { ::kill(pid, sig); }},
              ActorTiming{cfg_.actor_graceful_shutdown_ms, cfg_.task_retry_delay_ms}),
      contention_(cfg_.max_workers) {}

Scheduler::~Scheduler() { stop(); }

TaskRecord* Scheduler::record(uint32_t i) const { return &table_.record(i); }

void Scheduler::start() {
  // The region is fresh from the memfd, so all zero: the atomics start at 0.
  rc_->next_actor.store(1, std::memory_order_relaxed);
  rc_->max_workers = cfg_.max_workers;
  rc_->task_capacity = cfg_.task_capacity;
  for (uint32_t i = 0; i < kMaxResources; ++i) {
    rc_->totals[i] = cfg_.totals[i];
    rc_->available[i].store(cfg_.totals[i], std::memory_order_relaxed);
    if (i < cfg_.names.size()) {
      std::strncpy(rc_->resource_names[i], cfg_.names[i].c_str(), sizeof(rc_->resource_names[i]) - 1);
    }
  }
  Ring<SpawnRequest, kSpawnCapacity>::create_at(&rc_->spawn);
  {
    std::lock_guard<std::mutex> g(mu_);
    for (uint32_t w = 0; w < cfg_.num_cpus && w < cfg_.max_workers; ++w) (void)workers_.spawn(w);
  }
  thread_ = std::thread([this] { loop(); });
}

void Scheduler::stop() {
  if (rc_ == nullptr || stop_.exchange(true)) return;
  rc_->shutting_down.store(1, std::memory_order_release);
  ring_doorbell(rc_);
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> g(mu_);
  for (uint32_t w = 0; w < cfg_.max_workers; ++w) {
    if (workers_.info(w).state != WorkerState::kUnused) workers_.slot(w)->inbound.wake_all();
  }
  rc_->spawn.wake_all();
}

// --- submission -----------------------------------------------------------------------

void Scheduler::submit(const TaskSpec& spec, std::vector<ObjectID> deps) {
  std::lock_guard<std::mutex> g(mu_);  // short: one try_dispatch() or one enqueue
  dispatch_.submit(spec, std::move(deps));
}

// --- the scheduler thread -------------------------------------------------------------

void Scheduler::loop() {
  for (;;) {
    // relaxed: the doorbell's value only has to change between here and the futex wait.
    uint32_t bell = rc_->doorbell.load(std::memory_order_acquire);
    // Slow reads first, without mu_ (the header's invariants): exits and their log tails,
    // memory under pressure, CPU contention.
    const std::vector<ExitNote> exits = workers_.read_exits(cfg_.log_dir);
    const std::optional<MemoryReading> memory = read_memory_pressure();
    watch_contention();
    {
      std::lock_guard<std::mutex> g(mu_);
      if (stop_.load(std::memory_order_acquire)) return;
      reap_dead_workers(exits);
      collect_submissions();
      collect_placement_groups();
      dispatch_.lend_blocked_leases();
      dispatch_.steal_for_idle_workers();
      dispatch_queued();
      actors_.dispatch_calls();
      actors_.kill_unreferenced();
      if (memory) watch_memory(*memory);
      dispatch_.release_idle_leases();
      start_workers();
      retire_idle_workers();
      update_notify_flags();
      publish_available();
    }
    // seq_cst: Dekker pair with ring_doorbell (task.h): set the flag, then re-check the bell.
    rc_->sched_asleep.store(1, std::memory_order_seq_cst);
    if (rc_->doorbell.load(std::memory_order_seq_cst) == bell) {
      futex_wait(&rc_->doorbell, bell, kIdleSleepNs);
    }
    rc_->sched_asleep.store(0, std::memory_order_relaxed);
  }
}

void Scheduler::reap_dead_workers(const std::vector<ExitNote>& exits) {
  // Workers that announced themselves since the last pass.
  for (uint32_t w = 0; w < cfg_.max_workers; ++w) {
    if (!workers_.announced(w)) continue;
    workers_.mark_ready(w);
    startup_failures_ = 0;
    actors_.on_ready(w);  // killed while it was starting?
  }
  // Workers that exited, as read (with their log tails) before this pass took mu_. One that
  // exited since is reaped in the next pass: the forkserver's doorbell makes that soon.
  for (const ExitNote& exit : exits) {
    const uint32_t w = exit.slot;
    WorkerInfo& info = workers_.info(w);
    if (info.state == WorkerState::kUnused || info.generation != exit.generation) continue;
    const int32_t pid = exit.pid;
    // release: the loop's next memory read (without mu_) sees the kill done.
    if (!info.oom.empty()) oom_kill_pending_.store(false, std::memory_order_release);
    const bool was_ready = info.state == WorkerState::kReady;
    if (!was_ready && info.actor == 0 && ++startup_failures_ >= kMaxStartupFailures) {
      fail_queue_after_startup_failures(exit.why);
    }
    // Everything the dead process held (refs, views, a half-written object) goes back first,
    // before a new process can take this slot and its ledger.
    store_->release_client(w + 1, pid);
    actors_.owner_died(w, exit.generation);  // A7
    if (info.actor != 0) {
      actors_.reap(w, exit.why);
      continue;
    }
    // Every TaskRef pushed to it: the one it was running is retried or failed; the ones it
    // never claimed go back to the queue as they were; finished ones are freed.
    workers_.drain(w, table_, events_, [&](const TaskRef& ref, uint64_t c) {
      const TaskState ts = claim_state(c);
      if (ts == TaskState::kRunning && claim_worker(c) != w) return false;  // another copy runs it
      TaskSpec spec = record(ref.index)->spec;
      if (ts == TaskState::kRunning) {
        auto cancelled = std::find(force_cancelled_.begin(), force_cancelled_.end(), spec.returns);
        if (cancelled != force_cancelled_.end()) {
          force_cancelled_.erase(cancelled);
          finish_failed(spec, ErrorKind::kTaskCancelled,
                        std::string("task ") + spec.name + " was cancelled (its worker was killed)");
          return true;
        }
        if (spec.placement_group != 0 && !resources_.live(spec.placement_group)) {
          finish_failed(spec, ErrorKind::kPlacementGroupRemoved, group_removed(spec));
          return true;
        }
        if (spec.max_retries < 0 || static_cast<int32_t>(spec.attempt) < spec.max_retries) {
          ++spec.attempt;
          ++stats_.retried;
          // After an OOM kill, back off (doubling, as Ray does): the memory that was short may
          // still be in use, and an immediate rerun would likely be killed again.
          uint64_t not_before = 0;
          if (!info.oom.empty()) {
            const uint64_t delay_ms = std::min<uint64_t>(
                uint64_t{cfg_.oom_retry_delay_ms} << std::min<uint32_t>(spec.attempt - 1, 16),
                kMaxOomRetryDelayMs);
            not_before = monotonic_ns() + delay_ms * 1'000'000;
          }
          if (cfg_.task_retry_delay_ms > 0) {  // Ray's task_retry_delay_ms, for every retry
            not_before = std::max(not_before,
                                  monotonic_ns() + uint64_t{cfg_.task_retry_delay_ms} * 1'000'000);
          }
          dispatch_.enqueue(Pending{spec, {}, not_before}, /*front=*/true);
          return true;
        }
        if (!info.oom.empty()) {
          finish_failed(spec, ErrorKind::kOutOfMemory, "task " + std::string(spec.name) +
                                                           " was killed by the memory monitor: " +
                                                           info.oom);
          return true;
        }
        finish_failed(spec, ErrorKind::kWorkerCrashed,
                      std::string("the worker running task ") + spec.name + " died: " + exit.why);
        return true;
      }
      dispatch_.enqueue(Pending{spec, {}}, /*front=*/true);
      return true;
    });
    resources_.end(info.lease);
    workers_.reset(w);
    // The pool keeps num_cpus workers: replace this one in the same slot, unless it died
    // before it started (then start_workers() spawns again only for work that waits, so a
    // broken environment does not become an endless fork loop).
    if (was_ready && workers_.task_workers() < cfg_.num_cpus && !stop_.load(std::memory_order_relaxed)) {
      (void)workers_.spawn(w);
    }
  }
}

void Scheduler::fail_queue_after_startup_failures(const std::string& last) {
  // Workers that die before they start (a broken install, an import error in a module every
  // worker loads) would be respawned forever while get() waits: fail what waits instead.
  std::string msg = "worker processes keep dying before they start (" +
                    std::to_string(startup_failures_) + " in a row); the last one: " + last;
  for (const Pending& p : dispatch_.queue()) finish_failed(p.spec, ErrorKind::kWorkerCrashed, msg);
  dispatch_.clear();
  startup_failures_ = 0;
}

void Scheduler::finish_failed(const TaskSpec& spec, ErrorKind kind, const std::string& msg) {
  ++stats_.failed;
  for (uint32_t i = 0; i < spec.num_returns; ++i) {
    // A store that is full or closed cannot take it: get() reports that instead.
    (void)write_error_message(*store_, ObjectID{spec.returns.hi, spec.returns.lo + i}, kind, msg);
  }
  release_inputs(*store_, spec);  // the task's holds (task_table.h, T5)
}

void Scheduler::collect_submissions() {
  TaskSpec spec;
  std::vector<ActorCall> unknown;
  for (uint32_t w = 0; w < cfg_.max_workers; ++w) {
    if (workers_.info(w).state != WorkerState::kReady) continue;
    while (workers_.slot(w)->outbound.try_pop(spec)) {
      std::vector<ObjectID> deps(spec.deps, spec.deps + std::min(spec.num_deps, kMaxDeps));
      if ((spec.flags & kSpecActorCreate) != 0) {
        Status st = actors_.create(spec, std::move(deps), spec.max_retries,
                                   spec.max_task_retries, (spec.flags & kSpecDetached) != 0, w);
        if (!st.ok()) actors_.fail_creation(spec, st.message());
      } else if ((spec.flags & kSpecActorKill) != 0) {
        actors_.kill(spec.actor, spec.max_retries != 0);
      } else if ((spec.flags & kSpecCancel) != 0) {
        (void)cancel_locked(spec.returns, (spec.max_retries & kCancelForce) != 0,
                            (spec.max_retries & kCancelRecursive) != 0);
      } else if ((spec.flags & kSpecActorMethod) != 0) {
        ActorInfo* a = actors_.find(spec.actor);
        if (a == nullptr) {
          unknown.push_back(ActorCall{{spec, std::move(deps)}, w + 1});  // made later?
        } else {
          actors_.submit_call(*a, spec, std::move(deps), w + 1);  // A2: its caller is w
        }
      } else {
        dispatch_.enqueue(Pending{spec, std::move(deps)});
      }
    }
  }
  // A handle can travel from the worker that created the actor to another one whose ring was
  // read first; the creation was pushed before the handle escaped, so it has been read now.
  for (ActorCall& p : unknown) {
    ActorInfo* a = actors_.find(p.spec.actor);
    if (a == nullptr) {
      finish_failed(p.spec, ErrorKind::kActorDied, "no such actor");
    } else {
      actors_.submit_call(*a, p.spec, std::move(p.deps), p.caller);
    }
  }
}

void Scheduler::retire_idle_workers() {
  // Workers beyond num_cpus were started for tasks stranded behind blocked or busy ones (or
  // for zero-CPU tasks); once idle for kIdleWorkerRetireNs they go, as Ray's idle workers do,
  // so a burst of nested gets does not leave the node holding their memory. The forkserver
  // reaps them and reap_dead_workers() frees their slots without replacing them.
  // A worker that owns a live actor stays: its end would end the actor too (actors.h, A7).
  auto owns_actor = [this](uint32_t w) { return actors_.owns_live_actor(w); };
  for (int32_t pid : workers_.retire_idle(monotonic_ns(), kIdleWorkerRetireNs, owns_actor)) {
    kill(pid, SIGKILL);
  }
}

void Scheduler::watch_contention() {
  const uint64_t now = monotonic_ns();
  if (!contention_.due(now)) return;
  // The ready workers, from the slots' atomics: this runs without mu_.
  std::vector<std::pair<uint32_t, int32_t>> pids;
  for (uint32_t w = 0; w < workers_.used(); ++w) {
    const WorkerSlot* s = workers_.slot(w);
    if (static_cast<WorkerState>(s->state.load(std::memory_order_acquire)) == WorkerState::kReady) {
      pids.emplace_back(w, s->pid.load(std::memory_order_relaxed));
    }
  }
  if (contention_.observe(read_sample(now, pids))) {
    store_->set_cpus_contended(contention_.contended());
  }
}

void Scheduler::start_workers() {
  const Dispatcher::Demand demand = dispatch_.start_workers();
  stats_.workers_alive = demand.alive;
  uint32_t to_start = demand.to_start;
  for (uint32_t w = 0; w < cfg_.max_workers && to_start > 0; ++w) {
    if (workers_.info(w).state == WorkerState::kUnused) {
      (void)workers_.spawn(w);
      --to_start;
    }
  }
}

void Scheduler::collect_placement_groups() {
  const std::vector<uint32_t> removed = resources_.collect();
  if (removed.empty()) return;
  // As in Ray, what runs in a removed group's bundles is killed: its actors for good (their
  // calls fail with ActorDiedError), task workers with their tasks (TaskPlacementGroupRemoved
  // at the reap, not retried). What waits for it in the queue fails in dispatch_queued().
  actors_.kill_placed_in(removed, "its placement group was removed");
  for (uint32_t w = 0; w < workers_.used(); ++w) {
    const WorkerInfo& info = workers_.info(w);
    if (info.actor != 0 || !info.lease.held || info.lease.group == 0) continue;
    if (std::find(removed.begin(), removed.end(), info.lease.group) == removed.end()) continue;
    const int32_t pid = workers_.pid(w);
    if (pid > 0) ::kill(pid, SIGKILL);
  }
}

void Scheduler::dispatch_queued() {
  for (const Pending& p : dispatch_.dispatch_queued()) {
    finish_failed(p.spec, ErrorKind::kPlacementGroupRemoved, group_removed(p.spec));
  }
}

std::string Scheduler::group_removed(const TaskSpec& spec) {
  return std::string("task ") + spec.name +
         " cannot run: the placement group it was scheduled in was removed";
}

void Scheduler::publish_available() {
  const int64_t* available = resources_.available();
  for (uint32_t i = 0; i < kMaxResources; ++i) {
    // relaxed: each amount is read on its own, as a recent value (task.h).
    rc_->available[i].store(available[i], std::memory_order_relaxed);
  }
}

void Scheduler::update_notify_flags() {
  dispatch_.update_notify_flags(actors_.calls_waiting());
}

// --- actors ---------------------------------------------------------------------------

Result<uint32_t> Scheduler::create_actor(TaskSpec creation, std::vector<ObjectID> deps,
                                         int32_t max_restarts, int32_t max_task_retries,
                                         bool detached) {
  std::lock_guard<std::mutex> g(mu_);
  creation.actor = rc_->next_actor.fetch_add(1, std::memory_order_relaxed);
  Status st = actors_.create(creation, std::move(deps), max_restarts, max_task_retries, detached);
  if (!st.ok()) return st;
  return creation.actor;
}

void Scheduler::submit_actor_call(const TaskSpec& spec, std::vector<ObjectID> deps) {
  std::lock_guard<std::mutex> g(mu_);
  ActorInfo* a = actors_.find(spec.actor);
  if (a == nullptr) {
    collect_submissions();  // created by a worker whose creation is still in its ring?
    a = actors_.find(spec.actor);
  }
  if (a == nullptr) {
    finish_failed(spec, ErrorKind::kActorDied, "no such actor (it was never created here)");
    return;
  }
  actors_.submit_call(*a, spec, std::move(deps));
}

std::optional<Scheduler::MemoryReading> Scheduler::read_memory_pressure() {
  if (cfg_.memory_threshold <= 0) return std::nullopt;
  const uint64_t now = monotonic_ns();
  if (now < next_memory_check_ns_) return std::nullopt;
  next_memory_check_ns_ = now + uint64_t{cfg_.memory_period_ms} * 1'000'000;
  // One kill at a time: let the last one free its memory. acquire: pairs with the reaper's
  // release, so a pass after the reap reads again.
  if (oom_kill_pending_.load(std::memory_order_acquire)) return std::nullopt;
  MemoryReading reading;
  reading.memory = read_memory(cfg_.memory_limit);
  if (reading.memory.fraction() <= cfg_.memory_threshold) return std::nullopt;
  // Every worker that runs something; watch_memory() keeps the task workers among them.
  for (uint32_t w = 0; w < workers_.used(); ++w) {
    const WorkerSlot* s = workers_.slot(w);
    if (static_cast<WorkerState>(s->state.load(std::memory_order_acquire)) != WorkerState::kReady ||
        s->current.load(std::memory_order_relaxed) == 0) {
      continue;
    }
    const int32_t pid = s->pid.load(std::memory_order_relaxed);
    if (pid > 0) reading.workers.push_back({w, pid, private_memory(pid)});
  }
  return reading;
}

void Scheduler::watch_memory(const MemoryReading& reading) {
  if (oom_kill_pending_.load(std::memory_order_relaxed)) return;
  // Task workers running a task now and measured by the reading (one that started after it
  // is looked at in the next check). Actors and the driver are never chosen.
  std::vector<OomCandidate> cands;
  for (const WorkerMemory& m : reading.workers) {
    const WorkerInfo& info = workers_.info(m.slot);
    if (info.state != WorkerState::kReady || info.actor != 0 || workers_.pid(m.slot) != m.pid) {
      continue;
    }
    const uint32_t cur = workers_.slot(m.slot)->current.load(std::memory_order_relaxed);
    if (cur == 0) continue;
    const TaskRecord* r = record(cur - 1);
    const bool retriable = r->spec.max_retries < 0 ||
                           static_cast<int32_t>(r->spec.attempt) < r->spec.max_retries;
    cands.push_back({m.slot, m.private_bytes, retriable, r->started_ns});
  }
  const int64_t victim = choose_oom_victim(cands, reading.memory.capacity);
  if (victim < 0) return;
  const uint32_t w = cands[static_cast<size_t>(victim)].slot;
  const int32_t pid = workers_.pid(w);
  if (pid <= 0) return;
  char threshold[16];
  std::snprintf(threshold, sizeof threshold, "%.0f%%", cfg_.memory_threshold * 100);
  workers_.info(w).oom = "memory in use " + describe(reading.memory) +
                         " was above the threshold of " + threshold + " (worker pid=" +
                         std::to_string(pid) +
                         "). Use less memory per task, run fewer at once (num_cpus), or raise "
                         "memory_usage_threshold";
  oom_kill_pending_.store(true, std::memory_order_relaxed);
  ++stats_.oom_kills;
  kill(pid, SIGKILL);
}

void Scheduler::kill_actor(uint32_t actor, bool no_restart) {
  std::lock_guard<std::mutex> g(mu_);
  actors_.kill(actor, no_restart);
}

bool Scheduler::actor_alive(uint32_t actor, std::string* why) {
  std::lock_guard<std::mutex> g(mu_);
  ActorInfo* a = actors_.find(actor);
  if (a == nullptr) {
    collect_submissions();  // created by a worker whose creation is still in its ring?
    a = actors_.find(actor);
  }
  if (a == nullptr) return false;
  if (a->dead && why != nullptr) *why = a->death;
  return !a->dead && !a->no_restart;  // killed for good: gone already, for its name
}

// --- cancel ---------------------------------------------------------------------------

namespace {
template <typename Spec>  // a TaskSpec or a QueuedSpec (no 512-byte copy per queued task)
bool is_return_of(const Spec& spec, const ObjectID& id) {
  return id.hi == spec.returns.hi && id.lo >= spec.returns.lo &&
         id.lo < spec.returns.lo + std::max<uint32_t>(spec.num_returns, 1);
}
}  // namespace

bool Scheduler::cancel(const ObjectID& ret, bool force, bool recursive) {
  std::lock_guard<std::mutex> g(mu_);
  collect_submissions();  // the children of a task may still be in its worker's ring
  return cancel_locked(ret, force, recursive);
}

bool Scheduler::cancel_locked(const ObjectID& ret, bool force, bool recursive) {
  for (auto it = dispatch_.queue().begin(); it != dispatch_.queue().end(); ++it) {
    if (!is_return_of(it->spec, ret)) continue;
    TaskSpec spec = it->spec;  // never ran: it has no children
    dispatch_.dequeue(it);
    finish_failed(spec, ErrorKind::kTaskCancelled, std::string("task ") + spec.name + " was cancelled");
    return true;
  }
  for (uint32_t w = 0; w < cfg_.max_workers; ++w) {
    for (const TaskRef& ref : workers_.info(w).assigned) {
      TaskRecord* r = record(ref.index);
      uint64_t c = r->claim.load(std::memory_order_acquire);
      if (claim_gen(c) != ref.gen || !is_return_of(r->spec, ret)) continue;
      return cancel_record(ref.index, ref.gen, force, recursive, 0);
    }
  }
  return false;
}

bool Scheduler::cancel_record(uint32_t index, uint32_t gen, bool force, bool recursive,
                              int depth) {
  TaskRecord* r = record(index);
  uint64_t c = r->claim.load(std::memory_order_acquire);
  if (claim_gen(c) != gen) return false;
  if (claim_state(c) == TaskState::kQueued) {
    // Win the claim so no worker runs it; the worker that pops it counts it as skipped.
    if (r->claim.compare_exchange_strong(c, make_claim(gen, 0, TaskState::kDone),
                                         std::memory_order_acq_rel)) {
      finish_failed(r->spec, ErrorKind::kTaskCancelled,
                    std::string("task ") + r->spec.name + " was cancelled");
      return true;
    }
  }
  if (claim_state(c) == TaskState::kRunning) {
    // Its children first: once interrupted, it no longer waits for them.
    if (recursive) cancel_children(index, gen, force, depth + 1);
    int32_t pid = workers_.slot(claim_worker(c))->pid.load(std::memory_order_relaxed);
    if (force) force_cancelled_.push_back(r->spec.returns);
    // release: the worker's KeyboardInterrupt handler reads it after the signal lands.
    r->cancel_requested.store(1, std::memory_order_release);
    if (pid > 0) kill(pid, force ? SIGKILL : SIGINT);
    return true;
  }
  return false;  // done
}

void Scheduler::cancel_children(uint32_t index, uint32_t gen, bool force, int depth) {
  if (depth > 64) return;  // a chain of nested tasks this deep is a bug elsewhere
  auto is_child = [&](const auto& s) {  // a TaskSpec or a QueuedSpec
    return s.parent_index == index + 1 && s.parent_gen == gen &&
           (s.flags & (kSpecActorMethod | kSpecActorCreate)) == 0;
  };
  for (auto it = dispatch_.queue().begin(); it != dispatch_.queue().end();) {
    if (!is_child(it->spec)) {
      ++it;
      continue;
    }
    finish_failed(it->spec, ErrorKind::kTaskCancelled,
                  std::string("task ") + it->spec.name + " was cancelled with its parent");
    it = dispatch_.dequeue(it);
  }
  for (const HeldRef& ref : unfinished_refs(/*with_actors=*/true)) {
    if (is_child(record(ref.index)->spec)) cancel_record(ref.index, ref.gen, force, true, depth);
  }
}

// --- introspection --------------------------------------------------------------------

bool Scheduler::busy() {
  std::lock_guard<std::mutex> g(mu_);
  if (!dispatch_.queue().empty()) return true;
  for (uint32_t w = 0; w < cfg_.max_workers; ++w) {
    const WorkerInfo& info = workers_.info(w);
    if (info.state == WorkerState::kReady && info.pushed != workers_.done(w)) return true;
  }
  return false;
}

SchedulerStats Scheduler::stats() {
  std::lock_guard<std::mutex> g(mu_);
  SchedulerStats s = stats_;
  s.dispatched = dispatch_.stats().dispatched;
  s.direct = dispatch_.stats().direct;
  s.stolen = dispatch_.stats().stolen;
  s.workers_started = workers_.started();
  s.queued = dispatch_.queue().size();
  s.cpus_contended = contention_.contended();
  std::copy(resources_.available(), resources_.available() + kMaxResources, s.available);
  return s;
}

std::vector<Scheduler::TaskEvent> Scheduler::task_events() {
  std::lock_guard<std::mutex> g(mu_);
  for (uint32_t w = 0; w < cfg_.max_workers; ++w) {
    if (workers_.info(w).state == WorkerState::kReady) workers_.reclaim(w, table_, events_);  // the ones just finished too
  }
  return events_.snapshot();
}

std::vector<Scheduler::ActorSummary> Scheduler::actors() {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<ActorSummary> out;
  for (const auto& [id, a] : actors_.all()) {
    const WorkerInfo& w = workers_.info(a.slot);
    const bool here = !a.dead && w.actor == id;  // the slot's process is (or will be) this actor's
    std::string state = a.dead ? "DEAD"
                        : !here || w.state == WorkerState::kStarting ||
                                w.state == WorkerState::kUnused
                            ? "PENDING_CREATION"
                            : w.state == WorkerState::kReady ? "ALIVE" : "RESTARTING";
    int32_t pid = here && w.state == WorkerState::kReady
                      ? workers_.slot(a.slot)->pid.load(std::memory_order_relaxed)
                      : 0;
    out.push_back(ActorSummary{id, a.creation.name, state, pid, a.death, a.calls.size()});
  }
  std::sort(out.begin(), out.end(),
            [](const ActorSummary& x, const ActorSummary& y) { return x.id < y.id; });
  return out;
}

std::vector<Scheduler::TaskSummary> Scheduler::tasks() {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<TaskSummary> out;
  const uint64_t now = monotonic_ns();
  for (Pending& p : dispatch_.queue()) {
    const char* state = p.not_before_ns > now ? "BACKOFF"
                        : !dispatch_.deps_ready(p.deps) ? "PENDING_ARGS"
                                              : "PENDING_RESOURCES";
    out.push_back(TaskSummary{p.spec.name, p.spec.returns, state, 0, 0});
  }
  for (const HeldRef& ref : unfinished_refs(/*with_actors=*/false)) {  // actors: list_actors()
    const TaskRecord* r = record(ref.index);
    uint64_t c = r->claim.load(std::memory_order_acquire);
    const bool running = claim_state(c) == TaskState::kRunning;
    int32_t pid = running ? r->worker_pid
                          : workers_.slot(ref.worker)->pid.load(std::memory_order_relaxed);
    uint64_t ran = running && now > r->started_ns ? now - r->started_ns : 0;
    out.push_back(TaskSummary{r->spec.name, r->spec.returns,
                              running ? "RUNNING" : "QUEUED_ON_WORKER", pid, ran});
  }
  return out;
}

std::vector<Scheduler::HeldRef> Scheduler::unfinished_refs(bool with_actors) {
  std::vector<HeldRef> out;
  std::unordered_set<uint32_t> seen;
  for (uint32_t w = 0; w < cfg_.max_workers; ++w) {
    if (!with_actors && workers_.info(w).actor != 0) continue;
    for (const TaskRef& ref : workers_.info(w).assigned) {
      uint64_t c = record(ref.index)->claim.load(std::memory_order_acquire);
      if (claim_gen(c) != ref.gen || claim_state(c) == TaskState::kDone) continue;
      if (seen.insert(ref.index).second) out.push_back(HeldRef{ref.index, ref.gen, w});
    }
  }
  return out;
}

std::vector<int32_t> Scheduler::worker_pids() {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<int32_t> pids;
  for (uint32_t w = 0; w < cfg_.max_workers; ++w) {
    if (workers_.info(w).state == WorkerState::kReady) pids.push_back(workers_.slot(w)->pid.load());
  }
  return pids;
}

}  // namespace ember
