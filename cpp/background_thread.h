// BackgroundThread: a std::thread with its own mutex, condition variable and stop flag, for
// the store's background loops (the spiller in spill.h, the prefaulter and the idle trimmer
// in residency.h).
//
// Protocol
//   owner (the Store, in create/close)      the loop (body, on its own thread)
//   1. start(body)                           while (wait_for(period, ready)) { work }
//   3. stop(): stop = true under mu;         2. between steps of long work: if (stopping())
//      notify; join                             return
//   any thread: notify(update) runs update() under mu, then wakes the loop.
//
// Invariants
//   B1  Each loop has its own three (mu, cv, stop): no loop can delay, wake or stop another,
//       and what a loop's wake-up means (its `ready` predicate) is its own. The spiller and
//       the prefaulter once shared one set, so every prefault hint also woke the spiller.
//   B2  `stop` and whatever `ready` reads are written only under mu and the loop reads them
//       only under mu (in wait_for / stopping / its predicate), so a stop or an update made
//       just before the loop goes to sleep cannot be lost: the predicate is checked under
//       the same mutex before the cv wait atomically releases it.
//   B3  stop() returns only after the loop has returned (join), and a loop returns at the
//       latest one step of work after the flag is set, so a store never outlives its
//       threads and close() is prompt (a step is at most one 2 MiB populate, one spill
//       batch, or one trim of a block).
//   B4  start() happens before the object is shared with other threads (in Store::create),
//       and `started_` never changes afterwards, so started() needs no synchronisation.
//
// Not in shared memory: a BackgroundThread is one process's thread; processes never share it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

namespace ember {

class BackgroundThread {
 public:
  BackgroundThread() = default;
  ~BackgroundThread() { stop(); }
  BackgroundThread(const BackgroundThread&) = delete;
  BackgroundThread& operator=(const BackgroundThread&) = delete;

  /// Runs `body(*this)` on a new thread. At most once, before the owner is shared (B4).
  template <typename Body>
  void start(Body body) {
    started_ = true;
    thread_ = std::thread([this, body = std::move(body)]() mutable { body(*this); });
  }
  /// True once start() ran (even after stop()).
  bool started() const { return started_; }

  /// Sets the stop flag, wakes the loop and joins it. Idempotent; never from the loop itself.
  void stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  /// For the loop: sleeps until `ready()` (called under the mutex) holds, stop() is called,
  /// or `timeout` passes. Returns false when stopping.
  template <typename Rep, typename Period, typename Ready>
  bool wait_for(std::chrono::duration<Rep, Period> timeout, Ready ready) {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait_for(g, timeout, [&] { return stop_ || ready(); });
    return !stop_;
  }
  /// As wait_for, without a timeout.
  template <typename Ready>
  bool wait(Ready ready) {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [&] { return stop_ || ready(); });
    return !stop_;
  }
  /// For the loop, between the steps of long work: true once stop() was called.
  bool stopping() {
    std::lock_guard<std::mutex> g(mu_);
    return stop_;
  }
  /// From any thread: runs `update()` under the loop's mutex (it guards what `ready` reads),
  /// then wakes the loop.
  template <typename Update>
  void notify(Update update) {
    {
      std::lock_guard<std::mutex> g(mu_);
      update();
    }
    cv_.notify_one();  // one thread waits on this cv: its own loop (B1)
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  ///< guarded by mu_
  bool started_ = false;
  std::thread thread_;
};

}  // namespace ember
