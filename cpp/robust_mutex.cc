// RobustMutex: pthread robust process-shared mutex plumbing.
#include "robust_mutex.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace ember {

namespace {
[[noreturn]] void die(const char* what, int err) {
  // Only reachable on programming errors (EINVAL, EDEADLK): nothing sane to return to.
  std::fprintf(stderr, "ember: %s failed: error %d\n", what, err);
  std::abort();
}
}  // namespace

void RobustMutex::init() {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (int rc = pthread_mutex_init(&m_, &attr); rc != 0) die("pthread_mutex_init", rc);
  pthread_mutexattr_destroy(&attr);
}

bool RobustMutex::lock() {
  int rc = pthread_mutex_lock(&m_);
  if (rc == 0) return false;
  if (rc == EOWNERDEAD) return true;
  die("pthread_mutex_lock", rc);
}

void RobustMutex::unlock() {
  if (int rc = pthread_mutex_unlock(&m_); rc != 0) die("pthread_mutex_unlock", rc);
}

void RobustMutex::make_consistent() {
  if (int rc = pthread_mutex_consistent(&m_); rc != 0) die("pthread_mutex_consistent", rc);
}

}  // namespace ember
