// Worker: a worker process's side of the task runtime (its slot, rings and records).
//
// Invariants:
//  - One Worker per worker process. next_task() is called by one thread (it waits in C++;
//    the caller releases the GIL); finish() may be called from any thread (threaded and async
//    actors finish calls out of order).
//  - A task runs only after the claim CAS in next_task() succeeds (task.h); a TaskRef whose
//    CAS fails was run elsewhere or is stale, and only counts as done.
//  - finish() publishes DONE after the results are sealed, then counts the ref done, so the
//    driver never frees a record whose results are not yet visible.
#pragma once

#include <cstdint>
#include <memory>

#include "status.h"
#include "store.h"
#include "task.h"

namespace ember {

class Worker {
 public:
  /// Attaches to slot `index` of the node whose store is `store`.
  Worker(std::shared_ptr<Store> store, uint32_t index);

  /// Marks the slot ready (pid set) and wakes the scheduler.
  void announce(int32_t pid);
  /// Waits up to `timeout_ms` for the next task this worker wins; returns its record index,
  /// -1 on timeout, -2 when the node shuts down.
  int64_t next_task(int timeout_ms);
  /// The record of a task returned by next_task().
  TaskRecord& record(uint32_t index) const;
  /// Declares the task finished (its returns sealed): gives back its holds on its inputs,
  /// then marks it DONE (task_table.h, T5).
  void finish(uint32_t index);
  /// Submits a nested task to the scheduler (its returns already PENDING).
  Status submit(const TaskSpec& spec);
  /// Records that this actor is leaving on purpose (exit_actor): it is not restarted.
  void mark_exit_intended();
  /// Asks the scheduler to retire this (task) worker once it is idle (max_calls).
  void ask_retire();
  /// Declares that the running task waits in get() (gives its CPU back) or no longer does.
  void set_blocked(bool blocked);

  /// Marks `spec` as submitted by the task this worker runs (for recursive cancel).
  void stamp_parent(TaskSpec& spec) const {
    int64_t index = current();
    if (index < 0) return;
    spec.parent_index = static_cast<uint32_t>(index) + 1;
    // relaxed: our own record's claim, written by our CAS.
    spec.parent_gen = claim_gen(records_[index].claim.load(std::memory_order_relaxed));
  }
  /// The record index of the task this worker claimed and has not finished, or -1.
  int64_t current() const {
    return static_cast<int64_t>(slot_->current.load(std::memory_order_relaxed)) - 1;
  }
  RuntimeControl* control() const { return rc_; }

 private:
  std::shared_ptr<Store> store_;
  RuntimeControl* rc_;
  WorkerSlot* slot_;
  TaskRecord* records_;
  uint32_t index_;
};

}  // namespace ember
