// memory_monitor: parsing /proc/meminfo and cgroup v2 files.
#include "memory_monitor.h"

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

}  // namespace ember
