// RobustMutex: a process-shared lock in the segment that survives the death of its holder.
//
// Invariants:
//  - Lives in shared memory; initialised once by the segment's creator (init), then used by
//    reinterpret_cast in every process. Never destroyed while any process maps the segment.
//  - It is a pthread mutex with PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST: when a
//    holder dies (kill -9 included), the kernel walks that thread's robust list, marks the
//    lock owner-died and wakes one waiter. lock() then reports `owner_died`, the caller
//    repairs the state the lock protects and calls make_consistent() before unlock(); a
//    mutex unlocked without that would become unrecoverable and wedge the node.
#pragma once

#include <pthread.h>

namespace ember {

class RobustMutex {
 public:
  /// Initialises the mutex in place (creator only).
  void init();

  /// Blocks until held. Returns true when the previous holder died holding it: the
  /// protected state may be half-updated and must be repaired, then make_consistent().
  [[nodiscard]] bool lock();
  void unlock();
  /// Declares the protected state repaired after lock() returned true.
  void make_consistent();

 private:
  pthread_mutex_t m_;
};

}  // namespace ember
