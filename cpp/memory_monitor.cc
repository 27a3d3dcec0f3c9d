// memory_monitor: parsing /proc/meminfo, /proc/PID/statm and cgroup v2 files; the OOM victim.
#include "memory_monitor.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "status.h"

namespace ember {

namespace {

/// A value in kB from /proc/meminfo, in bytes (0 if absent).
uint64_t meminfo(const char* key) {
  std::ifstream f("/proc/meminfo");
  std::string line;
  size_t n = std::strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') {
      return std::stoull(line.substr(n + 1)) * 1024;
    }
  }
  return 0;
}

/// The first number in a file, or 0 (also for "max").
uint64_t read_number(const char* path) {
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return 0;
  try {
    return std::stoull(s);
  } catch (...) {
    return 0;
  }
}

uint64_t cgroup_inactive_file() {
  std::ifstream f("/sys/fs/cgroup/memory.stat");
  std::string key;
  uint64_t value;
  while (f >> key >> value) {
    if (key == "inactive_file") return value;
  }
  return 0;
}

}  // namespace

MemorySnapshot read_memory(uint64_t limit) {
  MemorySnapshot m;
  uint64_t total = meminfo("MemTotal");
  uint64_t available = meminfo("MemAvailable");
  m.capacity = total;
  m.used = total > available ? total - available : 0;
  uint64_t cg_max = read_number("/sys/fs/cgroup/memory.max");
  if (cg_max != 0 && cg_max < m.capacity) {
    uint64_t current = read_number("/sys/fs/cgroup/memory.current");
    uint64_t inactive = cgroup_inactive_file();
    m.capacity = cg_max;
    m.used = current > inactive ? current - inactive : current;
  }
  if (limit != 0 && limit < m.capacity) m.capacity = limit;
  return m;
}

std::string describe(const MemorySnapshot& m) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s of %s (%.0f%%)", format_bytes(m.used).c_str(),
                format_bytes(m.capacity).c_str(), m.fraction() * 100);
  return buf;
}

uint64_t private_memory(int32_t pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0, shared = 0;
  if (!(f >> size >> resident >> shared)) return 0;
  return (resident > shared ? resident - shared : 0) * 4096;
}

int64_t choose_oom_victim(const std::vector<OomCandidate>& cands, uint64_t capacity) {
  uint64_t largest = 0;
  for (const OomCandidate& c : cands) largest = std::max(largest, c.private_bytes);
  const uint64_t floor = std::max<uint64_t>(uint64_t{64} << 20, capacity / 100);
  int64_t best = -1;
  for (size_t i = 0; i < cands.size(); ++i) {
    const OomCandidate& c = cands[i];
    // Small, or not within 10% of the largest.
    if (c.private_bytes < floor || c.private_bytes * 10 < largest * 9) continue;
    const OomCandidate* b = best < 0 ? nullptr : &cands[static_cast<size_t>(best)];
    const bool better = b == nullptr || (c.retriable && !b->retriable) ||
                        (c.retriable == b->retriable && c.started_ns > b->started_ns);
    if (better) best = static_cast<int64_t>(i);
  }
  return best;
}

}  // namespace ember
