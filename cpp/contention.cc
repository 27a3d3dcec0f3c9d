// contention: schedstat and /proc/stat readings turned into the cpus_contended decision.
#include "contention.h"

#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace ember {

namespace {

/// Process `pid`'s main thread from /proc/PID/schedstat: nanoseconds it ran and waited on a
/// run queue ({0, 0} if unreadable).
void sched_times(int32_t pid, uint64_t* ran, uint64_t* waited) {
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
  *ran = *waited = 0;
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return;
  unsigned long long r = 0, w = 0;
  if (std::fscanf(f, "%llu %llu", &r, &w) == 2) {
    *ran = r;
    *waited = w;
  }
  std::fclose(f);
}

/// Nanoseconds all CPUs of the machine have been busy, from /proc/stat (0 if unreadable).
uint64_t machine_busy_ns() {
  FILE* f = std::fopen("/proc/stat", "re");
  if (f == nullptr) return 0;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  int got = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system,
                        &idle, &iowait, &irq, &softirq);
  std::fclose(f);
  if (got != 7) return 0;
  return (user + nice + system + irq + softirq) *
         (1'000'000'000ULL / static_cast<uint64_t>(sysconf(_SC_CLK_TCK)));
}

/// Nanoseconds of CPU this whole process (every thread) has used.
uint64_t own_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

/// The growth of a counter since `last` (C1), and `last` moves on.
uint64_t delta(uint64_t& last, uint64_t current) {
  uint64_t d = current >= last ? current - last : current;
  last = current;
  return d;
}

}  // namespace

ContentionSample read_sample(uint64_t now_ns,
                             const std::vector<std::pair<uint32_t, int32_t>>& workers) {
  ContentionSample s;
  s.now_ns = now_ns;
  uint64_t ran = 0;
  sched_times(getpid(), &ran, &s.driver_waited_ns);
  s.driver_cpu_ns = own_cpu_ns();
  s.workers.reserve(workers.size());
  for (const auto& [slot, pid] : workers) {
    ContentionSample::Worker w{slot, pid, 0, 0};
    sched_times(pid, &w.ran_ns, &w.waited_ns);
    s.workers.push_back(w);
  }
  s.machine_busy_ns = machine_busy_ns();
  return s;
}

bool ContentionWatch::observe(const ContentionSample& s) {
  const uint64_t elapsed = s.now_ns - last_ns_;
  const bool first = last_ns_ == 0;
  last_ns_ = s.now_ns;
  uint64_t waited = delta(driver_waited_ns_, s.driver_waited_ns);
  uint64_t ours = delta(driver_cpu_ns_, s.driver_cpu_ns);
  for (const ContentionSample::Worker& w : s.workers) {
    if (w.slot >= last_.size()) continue;
    Last& last = last_[w.slot];
    if (last.pid != w.pid) last = Last{w.pid, 0, 0};  // C1: a new process counts whole
    waited += delta(last.waited_ns, w.waited_ns);
    ours += delta(last.ran_ns, w.ran_ns);
  }
  const uint64_t busy = delta(machine_busy_ns_, s.machine_busy_ns);
  if (first || elapsed == 0) return false;  // C2
  const double wait_share = static_cast<double>(waited) / static_cast<double>(elapsed);
  const double others =
      busy > ours ? static_cast<double>(busy - ours) / static_cast<double>(elapsed) : 0.0;
  const bool was = contended();
  const bool now = was ? wait_share > kWaitOff && others > kOthersOff
                       : wait_share > kWaitOn && others > kOthersOn;
  contended_.store(now, std::memory_order_relaxed);
  return now != was;
}

}  // namespace ember
