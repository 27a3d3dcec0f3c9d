// contention: whether the node's processes queue for CPUs, so that nobody spins (store.h's
// cpus_contended flag), decided from the kernel's accounting every kPeriodNs.
//
// Why
//   Spinning before a sleep saves a futex wake-up (~30 us here) when a CPU is free; when other
//   programs keep the CPUs busy, a spinner only delays whoever it displaced. Two signs must
//   agree: the node's processes waited for a CPU (schedstat's run delay), and processes outside
//   the node used CPU meanwhile. Run delay alone is not enough: on a quiet 2-core machine the
//   driver and two spinning workers queue behind each other (measured: the flag went on in a
//   loop of sync round trips and p50 rose from 10 to 28 us).
//
// Protocol
//   The scheduler's loop, before it takes its lock, asks due(); if so it reads a Sample
//   (read_sample(): /proc/PID/schedstat of the driver and of each ready worker, /proc/stat,
//   the driver's CPU time) and feeds it to observe(), which returns whether the decision
//   changed. Nothing here needs the scheduler's lock: the watch is the loop thread's alone,
//   and the pids come from the worker slots' atomics.
//
// Invariants
//   C1  Every counter is turned into a delta since the last sample; a counter smaller than its
//       last value (a new process in a slot, or a new pid) counts whole, as a process that
//       started within the period.
//   C2  The first sample only sets the baselines: no decision is made from it.
//   C3  Hysteresis: on above kWaitOn of the elapsed time waited and kOthersOn CPUs used by
//       others; off again below kWaitOff or kOthersOff, so the flag does not flap.
//   C4  contended() may be read from any thread (stats()); everything else is the loop's.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

namespace ember {

/// What the kernel says at one moment: the raw counters one decision needs.
struct ContentionSample {
  uint64_t now_ns = 0;           ///< CLOCK_MONOTONIC
  uint64_t driver_waited_ns = 0; ///< the driver's main thread's run delay
  uint64_t driver_cpu_ns = 0;    ///< the driver's CPU time, all threads
  uint64_t machine_busy_ns = 0;  ///< every CPU's busy time (/proc/stat)
  struct Worker {
    uint32_t slot;
    int32_t pid;
    uint64_t ran_ns;     ///< its main thread's run time
    uint64_t waited_ns;  ///< and run delay
  };
  std::vector<Worker> workers;   ///< the ready workers
};

/// Reads a sample for the driver and the workers (slot, pid) in `workers`. Slow (one file per
/// process): call it without locks held.
ContentionSample read_sample(uint64_t now_ns, const std::vector<std::pair<uint32_t, int32_t>>& workers);

class ContentionWatch {
 public:
  static constexpr uint64_t kPeriodNs = 100'000'000;  ///< how often it looks
  static constexpr double kWaitOn = 0.2;              ///< C3: share of the elapsed time waited
  static constexpr double kWaitOff = 0.05;
  static constexpr double kOthersOn = 0.5;            ///< C3: CPUs busy outside the node
  static constexpr double kOthersOff = 0.25;

  /// Tracks up to `slots` worker slots.
  explicit ContentionWatch(uint32_t slots) : last_(slots) {}

  /// True once kPeriodNs have passed since the last sample (or for the first one).
  bool due(uint64_t now_ns) const { return last_ns_ == 0 || now_ns - last_ns_ >= kPeriodNs; }
  /// Takes a sample in (C1, C2, C3); true if contended() changed.
  bool observe(const ContentionSample& s);
  /// The current decision (C4).
  bool contended() const { return contended_.load(std::memory_order_relaxed); }

 private:
  struct Last {
    int32_t pid = 0;
    uint64_t ran_ns = 0;
    uint64_t waited_ns = 0;
  };
  uint64_t last_ns_ = 0;
  uint64_t driver_waited_ns_ = 0;
  uint64_t driver_cpu_ns_ = 0;
  uint64_t machine_busy_ns_ = 0;
  std::vector<Last> last_;  ///< by slot
  // relaxed: a hint read by stats(); the store's flag is what processes act on.
  std::atomic<bool> contended_{false};
};

}  // namespace ember
