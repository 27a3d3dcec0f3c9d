// memory_monitor: how much of the machine's (or the cgroup's) memory is in use.
//
// Invariants:
//  - Reads only kernel files (/proc/meminfo, cgroup v2 memory.current/memory.max); never
//    allocates from the object store or takes its lock, so it works when memory is tight.
//  - "Used" is what cannot be had back without killing someone: total minus MemAvailable for
//    the machine, memory.current minus inactive file pages for a cgroup. The fraction is
//    against the smallest of the machine's total, the cgroup's limit and a configured limit.
#pragma once

#include <cstdint>
#include <string>

namespace ember {

struct MemorySnapshot {
  uint64_t used = 0;      ///< bytes in use
  uint64_t capacity = 0;  ///< bytes the node may use
  double fraction() const { return capacity == 0 ? 0.0 : static_cast<double>(used) / capacity; }
};

/// Reads the memory in use now. `limit` (0: none) caps the capacity (tests use a small one).
MemorySnapshot read_memory(uint64_t limit);

/// "23.1 GiB of 24.0 GiB (96%)".
std::string describe(const MemorySnapshot& m);

}  // namespace ember
