// resources: a pool of the node's resources (CPU, GPU, custom) and the leases drawn from it.
//
// Protocol
//   A worker that runs tasks holds a Lease: the amounts it took out of the pool, and the GPU
//   ids of that take. The scheduler draws a lease when it pushes the first task to an idle
//   worker (lease()), lends it back while the worker is blocked in get() (lend()), takes it
//   back when the worker runs again (take_back()), and returns it once the worker has finished
//   everything it was given (end()). An actor that keeps its resources holds a Lease for its
//   life in the same way.
//
//        lease() ──► held ──lend()──► held+lent ──take_back()──► held ──end()──► (none)
//                      └────────────────────────end()──────────────────────────────┘
//
// Invariants
//   R1  available[i] + (sum of amounts of held, not lent leases) == totals[i], for every i,
//       at every point between calls. take_back() may make available[i] negative: a worker
//       that stops waiting gets its lease back even if that oversubscribes the node for a
//       while (Ray does the same), and nothing new is leased until enough is returned.
//   R2  A GPU id is in free_gpus() or in exactly one held lease's gpu_mask, never both; a lent
//       lease keeps its ids (the process still has CUDA_VISIBLE_DEVICES set to them).
//   R3  end() of a lease that is not held does nothing, so callers may end a lease on every
//       path out of a worker (idle, reaped, failed push) without tracking whether it was held.
//   R4  try_acquire() takes all of a request or nothing (no partial takes to undo).
//
// Why a pool object and not fields of the scheduler
//   Everything that changes amounts is here, so R1 and R2 are checked in one file
//   (cpp/tests/test_resources.cc). A future reservation (a placement group's bundle, DESIGN.md
//   §10) is a ResourcePool of its own: its amounts and GPU ids are taken out of the node's pool
//   with try_acquire() and take_gpus(), tasks scheduled into it lease from it, and removing it
//   gives them back (placement.h). Nothing here assumes there is one pool.
//
// Thread safety: none; the owner's lock (the scheduler's mu_) guards a pool and its leases.
#pragma once

#include <cstdint>

#include "status.h"
#include "task.h"

namespace ember {

/// Checks a task's resource request against the node's totals in `rc` (any process):
/// kInvalid with a message naming the task, the resource and both amounts. Checked once per
/// submission, before anything is created in the store (submission.h).
Status check_feasible(const RuntimeControl& rc, const TaskSpec& spec);

/// Resources a worker (or an actor that keeps them) holds, drawn from a ResourcePool.
struct Lease {
  int64_t amounts[kMaxResources] = {};  ///< in kResourceUnit
  uint32_t gpu_mask = 0;                ///< GPU ids this lease holds (bit i: GPU i)
  bool held = false;
  bool exclusive = false;               ///< leased for one non-default task: nothing else joins
  bool lent = false;                    ///< amounts given back while its worker is blocked
  uint32_t group = 0;                   ///< the placement group it was drawn from (0: the node)
  uint32_t bundle = 0;                  ///< and that group's bundle (placement.h)
};

/// True for a request of exactly 1 CPU and nothing else: the tasks that share a worker's lease.
bool is_default_request(const int64_t* resources);

class ResourcePool {
 public:
  /// A pool holding `totals` (kMaxResources amounts); GPU ids 0..floor(GPUs)-1 (at most 32).
  explicit ResourcePool(const int64_t* totals);
  /// A pool holding `amounts` (kMaxResources, or none if null) and the GPU ids of `gpu_ids`
  /// (a placement group's bundle: placement.h).
  ResourcePool(const int64_t* amounts, uint32_t gpu_ids);

  /// True if `need` fits in what is available now.
  [[nodiscard]] bool fits(const int64_t* need) const;
  /// Takes `need` out of the pool if all of it fits (R4); false (nothing taken) otherwise.
  [[nodiscard]] bool try_acquire(const int64_t* need);
  /// Returns amounts taken by try_acquire().
  void give_back(const int64_t* amounts);
  /// Takes GPU ids for a request of `gpus` (kResourceUnit): as many ids as the request rounded
  /// up (a fraction of a GPU still names the one it shares), lowest free first.
  [[nodiscard]] uint32_t take_gpus(int64_t gpus);
  /// Returns ids taken by take_gpus().
  void give_back_gpus(uint32_t mask);

  /// Draws `lease` (not held) for `need`, with GPU ids for its GPU amount (take_gpus()).
  /// `exclusive` is recorded for the dispatcher. False (nothing changed) if `need` does not fit.
  [[nodiscard]] bool lease(Lease& lease, const int64_t* need, bool exclusive);
  /// Returns a held lease's amounts (unless lent) and GPU ids; the lease is then empty (R3).
  void end(Lease& lease);
  /// A held lease whose worker blocks: its amounts go back to the pool, its GPU ids stay (R2).
  void lend(Lease& lease);
  /// A lent lease whose worker runs again: its amounts come out again, even below zero (R1).
  void take_back(Lease& lease);

  /// Amounts not leased (kMaxResources of them; may be negative, R1).
  const int64_t* available() const { return available_; }
  /// GPU ids not leased (bit i: GPU i).
  uint32_t free_gpus() const { return free_gpus_; }

 private:
  int64_t available_[kMaxResources] = {};
  uint32_t free_gpus_ = 0;
};

}  // namespace ember
