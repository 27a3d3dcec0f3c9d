// Worker: claiming, finishing and submitting tasks from a worker process.
#include "worker.h"

#include "submission.h"

namespace ember {

namespace {
constexpr int64_t kWorkerSpinNanos = 50'000;
}  // namespace

Worker::Worker(std::shared_ptr<Store> store, uint32_t index)
    : store_(std::move(store)), index_(index) {
  rc_ = reinterpret_cast<RuntimeControl*>(store_->runtime_region());
  RuntimeLayout layout(rc_->max_workers, rc_->task_capacity);
  auto* base = reinterpret_cast<uint8_t*>(rc_);
  slot_ = reinterpret_cast<WorkerSlot*>(base + layout.slots_at) + index;
  records_ = reinterpret_cast<TaskRecord*>(base + layout.records_at);
}

void Worker::announce(int32_t pid) {
  slot_->pid.store(pid, std::memory_order_relaxed);
  // release: the scheduler's acquire of the state sees the pid.
  slot_->state.store(static_cast<uint32_t>(WorkerState::kReady), std::memory_order_release);
  ring_doorbell(rc_);
}

TaskRecord& Worker::record(uint32_t index) const { return records_[index]; }

int64_t Worker::next_task(int timeout_ms) {
  TaskRef ref;
  for (;;) {
    if (rc_->shutting_down.load(std::memory_order_acquire) != 0) return -2;
    // Spin longer than the ring's default before sleeping: a caller that just got a result
    // often sends the next call within tens of microseconds, and a futex wake-up across vCPUs
    // costs ~30 us each way here (measured: sync actor calls 66-74 us across vCPUs).
    // Not while the node's processes wait for CPUs: the spin would take one from user code.
    if (!slot_->inbound.pop_wait(ref, timeout_ms, store_->may_spin() ? kWorkerSpinNanos : 0)) {
      return rc_->shutting_down.load(std::memory_order_acquire) != 0 ? -2 : -1;
    }
    // release: the scheduler's room check (has_room) may count this slot of the ring free.
    slot_->taken.fetch_add(1, std::memory_order_release);
    TaskRecord& r = records_[ref.index];
    uint64_t expected = make_claim(ref.gen, 0, TaskState::kQueued);
    // acq_rel: acquire the spec the driver wrote before queueing; release our claim.
    if (r.claim.compare_exchange_strong(expected, make_claim(ref.gen, index_, TaskState::kRunning),
                                        std::memory_order_acq_rel)) {
      r.started_ns = monotonic_ns();
      r.worker_pid = slot_->pid.load(std::memory_order_relaxed);
      slot_->current.store(ref.index + 1, std::memory_order_relaxed);
      return ref.index;
    }
    // Run by another worker, or stale: it only counts as looked at.
    slot_->done.fetch_add(1, std::memory_order_release);
  }
}

void Worker::finish(uint32_t index) {
  TaskRecord& r = records_[index];
  // The task's holds on its inputs go back now, while the task is still ours, so memory they
  // pin is free by the time its results are seen DONE. The flag first (release: after the
  // results' seals): if we die from here on, the reaper knows the task finished and neither
  // retries it nor gives the holds back again (task_table.h, T5).
  r.inputs_released.store(1, std::memory_order_release);
  release_inputs(*store_, r.spec);
  r.finished_ns = monotonic_ns();
  slot_->current.store(0, std::memory_order_relaxed);
  // relaxed: our own claim (RUNNING, set by our CAS); safe from any of our threads.
  const uint32_t gen = claim_gen(r.claim.load(std::memory_order_relaxed));
  // release: the driver's acquire load sees DONE only after the sealed results.
  r.claim.store(make_claim(gen, index_, TaskState::kDone), std::memory_order_release);
  slot_->done.fetch_add(1, std::memory_order_release);
  uint32_t level = rc_->notify.load(std::memory_order_relaxed);
  if (level == 2 || (level == 1 && slot_->inbound.size() <= 1)) ring_doorbell(rc_);
}

Status Worker::submit(const TaskSpec& spec) {
  if (!slot_->outbound.push_wait(spec, 10'000)) {
    return Status(StatusCode::kIOError, "the scheduler did not take a nested task for 10 s");
  }
  ring_doorbell(rc_);
  return Status::OK();
}

void Worker::ask_retire() {
  // release: the scheduler reads it (acquire) after it sees this worker idle.
  slot_->retire_asked.store(1, std::memory_order_release);
}

void Worker::mark_exit_intended() {
  slot_->exit_intended.store(1, std::memory_order_release);
}

void Worker::set_blocked(bool blocked) {
  slot_->blocked.store(blocked ? 1 : 0, std::memory_order_release);
  ring_doorbell(rc_);
}

}  // namespace ember
