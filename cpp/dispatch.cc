// dispatch: the queue, the choice of a worker for each task, stealing and stranded tasks.
#include "dispatch.h"

#include <algorithm>

namespace ember {

Dispatcher::Dispatcher(Store& store, RuntimeControl* rc, WorkerPool& workers,
                       NodeResources& resources, TaskTable& table, TaskEvents& events)
    : store_(store), rc_(rc), workers_(workers), resources_(resources), table_(table),
      events_(events) {}

void Dispatcher::enqueue(Pending p, bool front) {
  if (!is_default(p.spec)) ++queued_special_;
  if (front) {
    queue_.push_front(std::move(p));
  } else {
    queue_.push_back(std::move(p));
  }
}

std::deque<Pending>::iterator Dispatcher::dequeue(std::deque<Pending>::iterator it) {
  if (!is_default(it->spec)) --queued_special_;
  return queue_.erase(it);
}

void Dispatcher::clear() {
  queue_.clear();
  queued_special_ = 0;
}

void Dispatcher::submit(const TaskSpec& spec, std::vector<ObjectID> deps) {
  if (queue_.empty() && deps_ready(deps) && is_default(spec) && try_dispatch(spec, true)) return;
  // O(1) here (update_notify_flags() scans everything; the scheduler thread runs it when the
  // doorbell wakes it): workers must now ring when they run low, or after every task if this
  // one waits on results or needs other resources.
  const uint32_t level = (deps.empty() && is_default(spec)) ? 1 : 2;
  // Behind a long queue of default tasks a default task cannot start sooner than they do,
  // and the scheduler was rung for them: waking it again for each one of a burst only made it
  // fight this thread for the lock (perf: futex wake-ups, ~35% of the driver's time). A short
  // queue still rings: the scheduler then refills workers' rings sooner (fan-out measured
  // 1.003x ideal with, 1.007x without).
  const bool behind_defaults =
      queue_.size() >= kQueueLookahead && queued_special_ == 0 && level == 1;
  enqueue(Pending{spec, std::move(deps)});
  // relaxed: a hint for workers; the doorbell below (or the 50 ms housekeeping) follows.
  if (rc_->notify.load(std::memory_order_relaxed) < level) {
    rc_->notify.store(level, std::memory_order_relaxed);
  }
  if (!behind_defaults) ring_doorbell(rc_);
}

bool Dispatcher::deps_ready(std::vector<ObjectID>& deps) {
  return deps.empty() || store_.drop_sealed(deps) == 0;  // one store lock for all of them
}

bool Dispatcher::push(uint32_t w, const TaskSpec& spec, uint32_t gpu_mask) {
  if (!table_.has_free()) {
    for (uint32_t v = 0; v < workers_.size(); ++v) workers_.reclaim(v, table_, events_);
  }
  std::optional<TaskRef> ref = table_.publish(spec, gpu_mask);
  if (!ref) return false;
  WorkerInfo& info = workers_.info(w);
  if (info.gpu < 0 && info.actor == 0) info.gpu = spec.resources[kResourceGPU] > 0 ? 1 : 0;  // D6
  // has_room() was checked, so this fails only if the worker is wedged (a consumer that died
  // mid-pop); then the caller keeps the task, and reaping the worker frees its ring.
  if (!workers_.push(w, *ref)) {
    table_.free(ref->index);
    return false;
  }
  ++stats_.dispatched;
  return true;
}

bool Dispatcher::try_dispatch(const TaskSpec& spec, bool direct) {
  // Slots past the highest ever spawned are unused: not looked at (256 by default, a few in
  // use; these loops ran on every dispatch).
  const uint32_t n = workers_.used();
  if (!table_.has_free()) {
    for (uint32_t w = 0; w < n; ++w) workers_.reclaim(w, table_, events_);
    if (!table_.has_free()) return false;
  }
  if (is_default(spec)) {
    int64_t best = -1;
    uint64_t best_load = queue_.size() >= kQueueLookahead ? kDeepDepth : kDepth;
    // (a) an idle worker that already holds a default lease;
    for (uint32_t w = 0; w < n; ++w) {
      const WorkerInfo& info = workers_.info(w);
      if (info.state != WorkerState::kReady || info.lease.exclusive || info.actor != 0) continue;
      if (info.lease.held && !info.lease.lent && workers_.is_idle(w) && takes(w, false)) {
        best = w;
        break;
      }
    }
    // (b) an idle worker that can lease a CPU (D4);
    if (best < 0) {
      for (uint32_t w = 0; w < n; ++w) {
        WorkerInfo& info = workers_.info(w);
        if (info.lease.held || !workers_.is_idle(w) || !takes(w, false)) continue;
        if (!resources_.lease(info.lease, spec.resources, Placement{}, /*exclusive=*/false)) {
          break;
        }
        best = w;
        break;
      }
    }
    // (c) the least loaded leased worker with room in its ring.
    if (best < 0) {
      for (uint32_t w = 0; w < n; ++w) {
        const WorkerInfo& info = workers_.info(w);
        if (info.state != WorkerState::kReady || !info.lease.held || info.lease.exclusive ||
            info.lease.lent || workers_.retiring(w) || workers_.blocked(w) || !takes(w, false)) {
          continue;
        }
        const uint64_t load = info.pushed - workers_.done(w);
        if (load < best_load) {
          best_load = load;
          best = w;
        }
      }
    }
    if (best < 0 || !push(static_cast<uint32_t>(best), spec)) return false;
    if (direct) ++stats_.direct;
    return true;
  }
  // A non-default task: an idle worker with no lease, leasing exactly what the task needs
  // (from its placement group's bundle, if it has one).
  const bool gpus = spec.resources[kResourceGPU] > 0;
  for (uint32_t w = 0; w < n; ++w) {
    WorkerInfo& info = workers_.info(w);
    if (info.lease.held || !workers_.is_idle(w) || !takes(w, gpus)) continue;
    if (!resources_.lease(info.lease, spec.resources, placement_of(spec), /*exclusive=*/true)) {
      return false;
    }
    if (!push(w, spec, info.lease.gpu_mask)) {
      resources_.end(info.lease);
      return false;
    }
    return true;
  }
  return false;
}

void Dispatcher::lend_blocked_leases() {
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    WorkerInfo& info = workers_.info(w);
    if (info.state != WorkerState::kReady || !info.lease.held) continue;
    // acquire: pairs with the worker's release of `blocked`.
    if (workers_.slot(w)->blocked.load(std::memory_order_acquire) != 0) {
      resources_.lend(info.lease);
    } else {
      resources_.take_back(info.lease);  // even if that oversubscribes the node for a while
    }
  }
}

void Dispatcher::steal_for_idle_workers() {
  const uint32_t n = workers_.size();
  for (uint32_t idle = 0; idle < n; ++idle) {
    WorkerInfo& thief = workers_.info(idle);
    if (!workers_.is_idle(idle) || thief.lease.exclusive || !takes(idle, false)) continue;
    for (uint32_t v = 0; v < n; ++v) {
      const WorkerInfo& victim = workers_.info(v);
      if (v == idle || victim.state != WorkerState::kReady || victim.actor != 0) continue;
      workers_.reclaim(v, table_, events_);
      // The victim's unclaimed refs, oldest first; it is busy (or blocked) with another task.
      bool moved = false;
      for (const TaskRef& ref : victim.assigned) {
        const uint64_t c = table_.claim(ref.index);
        if (claim_gen(c) != ref.gen || claim_state(c) != TaskState::kQueued) continue;
        // Only default tasks move: a task with its own lease (GPU ids, custom resources) must
        // run where that lease is, or its GPU could be handed out twice (D3).
        const TaskSpec& spec = table_.record(ref.index).spec;
        if (!is_default(spec)) continue;
        if (!thief.lease.held &&
            !resources_.lease(thief.lease, spec.resources, Placement{}, /*exclusive=*/false)) {
          return;
        }
        if (!workers_.has_room(idle) || !workers_.push(idle, ref)) return;
        ++stats_.stolen;
        moved = true;
        break;
      }
      if (moved) break;
    }
  }
}

std::vector<Pending> Dispatcher::dispatch_queued() {
  std::vector<Pending> orphans;
  const uint64_t now = monotonic_ns();
  // FIFO for default tasks (D1). Tasks with other resources (zero CPUs, GPUs, custom) may
  // still fit, so the look goes on for them: through the whole queue every 10 ms (see
  // start_workers), else 256 entries further.
  bool defaults_blocked = false;
  const bool whole = now >= next_queue_scan_ns_;
  size_t looked_past = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (defaults_blocked) {
      if (queued_special_ == 0) break;  // only default tasks left: none may overtake
      if (!whole && ++looked_past > kQueueLookahead) break;
      if (is_default(it->spec)) {
        ++it;
        continue;
      }
    }
    if (it->spec.placement_group != 0 && !resources_.live(it->spec.placement_group)) {
      orphans.push_back(*it);
      it = dequeue(it);
      continue;
    }
    if (it->not_before_ns > now || !deps_ready(it->deps)) {
      ++it;
      continue;
    }
    if (!try_dispatch(it->spec, false)) {
      defaults_blocked = defaults_blocked || is_default(it->spec);
      ++it;
      continue;
    }
    it = dequeue(it);
  }
  return orphans;
}

void Dispatcher::release_idle_leases() {
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    WorkerInfo& info = workers_.info(w);
    if (info.actor != 0) {
      workers_.reclaim(w, table_, events_);  // an actor's records are freed as its calls finish
      continue;
    }
    if (!info.lease.held || info.state != WorkerState::kReady) continue;
    if (info.pushed == workers_.done(w)) {
      workers_.reclaim(w, table_, events_);
      resources_.end(info.lease);
    }
  }
}

Dispatcher::Demand Dispatcher::start_workers() {
  // Runnable-by-resources tasks left in the queue with no idle worker for them: start workers
  // (blocked workers and zero-CPU tasks are why there can be more workers than CPUs).
  // Idle workers by what they may take (D6): a fresh one counts for both kinds.
  uint32_t starting = 0, idle_cpu = 0, idle_gpu = 0, alive = 0;
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    const WorkerInfo& info = workers_.info(w);
    if (info.actor != 0) continue;
    if (info.state == WorkerState::kStarting) ++starting;
    if (info.state == WorkerState::kReady) {
      ++alive;
      if (workers_.is_idle(w) && !info.lease.held) {
        idle_cpu += takes(w, false) ? 1 : 0;
        idle_gpu += takes(w, true) ? 1 : 0;
      }
    }
  }
  uint32_t want = 0, want_gpu = 0;
  int64_t avail[kMaxResources];
  std::copy(resources_.available(), resources_.available() + kMaxResources, avail);
  const uint64_t now = monotonic_ns();
  // A scan of 10,000 queued tasks on every pass of this thread cost ~5% of the CPU of a burst
  // of tiny tasks (perf), so a long queue is scanned whole only every 10 ms; in between, 256
  // entries that cannot start now end the look (a zero-CPU task far back waits <= 10 ms).
  const bool whole = now >= next_queue_scan_ns_;
  if (whole) next_queue_scan_ns_ = now + kQueueScanPeriodNs;
  size_t misses = 0;
  for (const Pending& p : queue_) {
    if (!whole && misses >= kQueueLookahead) break;
    if (!p.deps.empty() || p.not_before_ns > now) {
      ++misses;
      continue;
    }
    const bool gpus = p.spec.resources[kResourceGPU] > 0;
    if (p.spec.placement_group != 0) {  // its bundle's amounts are not in `avail`
      if (resources_.fits(p.spec.resources, placement_of(p.spec))) {
        ++(gpus ? want_gpu : want);
      } else {
        ++misses;
      }
      continue;
    }
    bool fits = true;
    for (uint32_t i = 0; i < kMaxResources; ++i) fits = fits && p.spec.resources[i] <= avail[i];
    if (!fits) {
      if (queued_special_ == 0) break;  // all the rest need what this one could not get
      ++misses;
      continue;
    }
    for (uint32_t i = 0; i < kMaxResources; ++i) avail[i] -= p.spec.resources[i];
    ++(gpus ? want_gpu : want);
  }
  // D5: stranded tasks want a worker too (default tasks: no GPUs).
  want += count_stranded(avail);
  const uint32_t need = (want > idle_cpu ? want - idle_cpu : 0) +
                        (want_gpu > idle_gpu ? want_gpu - idle_gpu : 0);
  return Demand{alive, need > starting ? need - starting : 0};
}

uint32_t Dispatcher::count_stranded(int64_t* avail) const {
  uint32_t stranded = 0;
  // A busy node has leased every CPU: then nothing could start anyway (the common case of a
  // burst of tiny tasks costs one comparison here).
  if (avail[kResourceCPU] < kResourceUnit) return 0;
  // A worker that is neither blocked nor running anything is about to claim what its ring
  // holds; a task stolen for it is still listed (QUEUED) in its victim's ring too.
  auto free_to_claim = [this](uint32_t w) {
    return !workers_.blocked(w) &&
           workers_.slot(w)->current.load(std::memory_order_relaxed) == 0;
  };
  std::vector<uint32_t> claimable;
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    const WorkerInfo& info = workers_.info(w);
    if (info.state != WorkerState::kReady || info.actor != 0 || !free_to_claim(w)) continue;
    for (const TaskRef& ref : info.assigned) claimable.push_back(ref.index);
  }
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    const WorkerInfo& info = workers_.info(w);
    if (info.state != WorkerState::kReady || info.actor != 0 || info.lease.exclusive) continue;
    if (info.pushed == workers_.done(w) || free_to_claim(w)) continue;
    for (const TaskRef& ref : info.assigned) {
      const uint64_t c = table_.claim(ref.index);
      if (claim_gen(c) != ref.gen || claim_state(c) != TaskState::kQueued) continue;
      if (std::find(claimable.begin(), claimable.end(), ref.index) != claimable.end()) continue;
      const TaskSpec& spec = table_.record(ref.index).spec;
      bool fits = true;
      for (uint32_t i = 0; i < kMaxResources; ++i) fits = fits && spec.resources[i] <= avail[i];
      if (!fits) return stranded;
      for (uint32_t i = 0; i < kMaxResources; ++i) avail[i] -= spec.resources[i];
      ++stranded;
    }
  }
  return stranded;
}

void Dispatcher::update_notify_flags(bool actor_calls_waiting) {
  // 2: ring after every task (someone waits on results: deps, exclusive or lent leases);
  // 1: ring when nearly out of work (the queue has more, or a task could move to you);
  // 0: never (everything is dispatched and nobody waits).
  uint32_t level = queue_.empty() ? 0 : 1;
  size_t looked = 0;  // the head of a long queue is enough: the rest waits behind it
  for (const Pending& p : queue_) {
    if (++looked > kQueueLookahead) break;
    if (!p.deps.empty() || !is_default(p.spec)) {
      level = 2;
      break;
    }
  }
  if (actor_calls_waiting) level = 2;  // an actor's ring has to be refilled
  for (uint32_t w = 0; w < workers_.size() && level < 2; ++w) {
    const WorkerInfo& info = workers_.info(w);
    if (info.state != WorkerState::kReady) continue;
    if (info.lease.exclusive || info.lease.lent) level = 2;
    if (info.pushed - workers_.done(w) > 1) level = std::max(level, 1u);
  }
  // relaxed: a late flag costs one missed early wake-up; the scheduler also wakes every 50 ms.
  rc_->notify.store(level, std::memory_order_relaxed);
}

}  // namespace ember
