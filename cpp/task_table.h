// task_table: the driver's books on the task records in the segment (which are free, and the
// generation of each), and the one place where a record is published or freed.
//
// Protocol (the claim word of task.h)
//   driver: publish()                      worker: next_task()
//     1. take a free index                    1. pop a TaskRef {index, gen} from its ring
//     2. write spec, times, gpu_mask          2. CAS claim (gen, QUEUED) -> (gen, RUNNING, me)
//     3. claim = (gen, QUEUED)   (release)    3. run; claim = (gen, DONE, me)   (release)
//     4. push TaskRef {index, gen}
//   driver: free(), once the record is DONE, or its worker is dead, or its push failed
//     5. claim = (gen + 1, FREE)  (release)   a TaskRef of gen, still in some ring, now fails 2
//     6. the index goes back on the free list
//
// Invariants
//   T1  Only the driver publishes and frees records, under the scheduler's lock; the free
//       list and the generations are the driver's alone (workers read generations only
//       through the claim word).
//   T2  A free record's claim is (gen, FREE) with gen == generation(index); publishing it uses
//       that gen, and freeing it bumps the gen. So a TaskRef is current exactly while its gen
//       is the record's, and every copy of it (a stolen task is in two rings) goes stale at
//       once when the record is freed: no copy can run a later task's spec.
//   T3  A record is freed once per publish: free() is the only path back to the free list and
//       every caller frees a record it has just seen current (gen matches) and then drops its
//       ref. (Debug builds check that a freed index is not already free.)
//   T4  Indices come back last-freed first, so a node that keeps few tasks in flight touches
//       few records (their cache lines and pages stay warm).
//   T5  A task's holds on its function and its args object (submission.h) go back at most
//       once: by the worker that runs it, after its results are sealed and before DONE, with
//       `inputs_released` set first (Worker::finish); or by the scheduler when it fails the
//       task for good. A worker that dies with the flag set finished the task: the reaper
//       frees its record like a DONE one (drain), never retries it, and gives nothing back
//       (a death between the flag and the releases leaks those holds; a retry would give them
//       back twice, freeing a function object its RemoteFunction still holds). A worker that
//       dies before the flag leaves them to the retry.
//
// Crash story: a worker that dies holding a record leaves it QUEUED or RUNNING with the
// current gen; the scheduler frees it while reaping the worker (after deciding to retry or
// fail the task), which makes the dead worker's copies stale for any process that pops them.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "task.h"

namespace ember {

class TaskTable {
 public:
  /// Books for `capacity` records at `records` (in the segment's runtime region, zeroed: each
  /// record starts FREE with generation 0; the first publish uses generation 1).
  TaskTable(TaskRecord* records, uint32_t capacity);

  uint32_t capacity() const { return capacity_; }
  TaskRecord& record(uint32_t index) const { return records_[index]; }
  /// The generation the next publish of `index` uses (the current one while it is published).
  uint32_t generation(uint32_t index) const { return gen_[index]; }
  /// The claim word of `index` (acquire: a DONE seen here comes after the task's results).
  uint64_t claim(uint32_t index) const {
    return records_[index].claim.load(std::memory_order_acquire);
  }
  /// True if `ref` still names the task it was pushed for (the record was not freed since).
  bool current(const TaskRef& ref) const { return claim_gen(claim(ref.index)) == ref.gen; }
  bool has_free() const { return !free_.empty(); }
  size_t free_count() const { return free_.size(); }

  /// Takes a free record, writes `spec` into it and publishes it QUEUED (steps 1-3): returns
  /// the TaskRef to push, or nothing if every record is in use.
  [[nodiscard]] std::optional<TaskRef> publish(const TaskSpec& spec, uint32_t gpu_mask);
  /// Frees record `index` (steps 5-6, T3): the only way a record goes back.
  void free(uint32_t index);
  /// True if worker `w` ran the task of `ref` to its end: DONE, or RUNNING on `w` with its
  /// inputs given back (T5: `w` died after its results were sealed).
  bool finished_by(const TaskRef& ref, uint32_t w) const;

 private:
  TaskRecord* records_;
  uint32_t capacity_;
  std::vector<uint32_t> free_;  ///< free indices, a stack (T4)
  std::vector<uint32_t> gen_;   ///< the driver's copy of each record's generation (T1)
};

}  // namespace ember
