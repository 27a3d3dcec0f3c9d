// memory_monitor: how much of the machine's (or the cgroup's) memory is in use, and which
// running task's worker to kill when it is too much.
//
// Invariants:
//  - Reads only kernel files (/proc/meminfo, cgroup v2 memory.current/memory.max); never
//    allocates from the object store or takes its lock, so it works when memory is tight.
//  - "Used" is what cannot be had back without killing someone: total minus MemAvailable for
//    the machine, memory.current minus inactive file pages for a cgroup. The fraction is
//    against the smallest of the machine's total, the cgroup's limit and a configured limit.
//  - The victim is the running task whose worker holds the most private memory: the likely
//    culprit. Ray kills the newest retriable task instead, which kills innocent retriable
//    tasks again and again while a non-retriable one eats the memory (measured: a bystander
//    killed four times before the hog). Among workers within 10% of the largest, the newest
//    retriable task goes first, as in Ray. A worker holding less than max(64 MiB, 1% of the
//    capacity) is never chosen: the pressure then comes from outside the node (or from the
//    driver), and killing it would lose work and free nothing.
//  - Every function here reads kernel files or is pure: the scheduler calls the readers
//    before it takes its lock and choose_oom_victim() under it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

/// Resident memory of process `pid` not shared with others (resident - shared pages), in
/// bytes, from /proc/PID/statm; 0 if unreadable.
uint64_t private_memory(int32_t pid);

/// A worker running a task, as the memory monitor weighs it.
struct OomCandidate {
  uint32_t slot;
  uint64_t private_bytes;  ///< private_memory() of its process
  bool retriable;          ///< its task has retries left
  uint64_t started_ns;     ///< when its task started (newer goes first among equals)
};

/// The index in `cands` of the worker to kill (see the invariants), or -1 for none.
int64_t choose_oom_victim(const std::vector<OomCandidate>& cands, uint64_t capacity);

}  // namespace ember
