// ObjectTable: the node's index of objects (id -> state, location, reference counts, pins).
//
// Invariants (all hold whenever the store lock is free; every call is made under it):
//  - Open addressing with linear probing over a power-of-two array in the segment. An id's
//    home slot is its sequence number modulo the capacity, so ids issued in order fill the
//    table in order (cache- and page-friendly) and collide only after a full wrap.
//  - A slot is EMPTY, TOMBSTONE (erased; probing continues past it) or LIVE (PENDING,
//    CREATED or SEALED). erase() turns trailing tombstones back into EMPTY so probes stay short.
//  - A slot's `state` is written last on insert and first on erase, so a process that dies
//    mid-call leaves either the old or the new entry visible, never a torn one.
//  - An object is immutable once SEALED: its payload bytes are never written again.
//  - `refs` counts ObjectRefs (node-wide); `pins` counts readers and the writer of a
//    CREATED object. The store frees an object when both reach zero.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "status.h"

namespace ember {

/// A node-unique object id: the node's random tag and a sequence number.
struct ObjectID {
  uint64_t hi = 0;  ///< the node tag
  uint64_t lo = 0;  ///< sequence number, unique within the node
  bool operator==(const ObjectID& o) const { return hi == o.hi && lo == o.lo; }
  bool operator!=(const ObjectID& o) const { return !(*this == o); }
  /// 32 hex digits, as ObjectRef.hex() shows it (and as spill files are named).
  std::string hex() const {
    char out[33];
    std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(hi),
                  static_cast<unsigned long long>(lo));
    return out;
  }
};

enum class SlotState : uint32_t {
  kEmpty = 0,
  kCreated = 1,    ///< payload allocated, being written
  kSealed = 2,     ///< immutable, readable
  kTombstone = 3,  ///< erased
  kPending = 4,    ///< promised (a task's return): no payload yet
  kSpilled = 5,    ///< sealed, but its bytes are in a spill file, not in memory
};

/// Entry flags.
enum EntryFlags : uint32_t {
  kEntryHasRefs = 1,    ///< the payload lists nested ObjectRefs the object holds (object_format.h)
  kEntrySpilling = 2,   ///< its bytes are being written to a spill file (a spiller pins it)
  kEntryRestoring = 4,  ///< CREATED by a reader bringing it back from its spill file
  kEntryError = 8,      ///< sealed holding a failure (kFlagError): get() raises it at once
};

/// One object's record (one cache line).
struct ObjectEntry {
  ObjectID id;
  SlotState state;
  int32_t owner_pid;  ///< the process that created it
  uint64_t payload;   ///< offset of the payload in the segment
  uint64_t size;      ///< bytes written by the creator
  int32_t refs;       ///< ObjectRefs alive in any process
  int32_t pins;       ///< views alive in any process, +1 for the writer until sealed
  uint32_t waiters;   ///< 1 once someone sleeps until this object is sealed
  uint32_t flags;     ///< EntryFlags
  union {
    uint64_t last_access;  ///< in memory: the store's access clock at the last pin (LRU)
    uint64_t spilled_at;   ///< SPILLED, and CREATED while restoring: its spill file and offset
  };
};
static_assert(sizeof(ObjectEntry) == 64);

/// The table's shared counters (in the segment).
struct TableState {
  uint64_t capacity;  ///< a power of two
  uint64_t live;      ///< PENDING + CREATED + SEALED slots
};

class ObjectTable {
 public:
  ObjectTable(TableState* st, ObjectEntry* slots) : st_(st), slots_(slots) {}

  /// Initialises an empty table of `capacity` slots (a power of two) (creator only).
  static void init(TableState* st, ObjectEntry* slots, uint64_t capacity);

  /// The slot holding `id`, or -1.
  int64_t find(const ObjectID& id) const;
  /// Adds `id` in `state` (CREATED or PENDING) and returns its slot; kAlreadyExists or
  /// kTableFull.
  Result<int64_t> insert(const ObjectID& id, int32_t owner_pid, uint64_t payload, uint64_t size,
                         SlotState state = SlotState::kCreated);
  /// Removes the entry in `slot`.
  void erase(int64_t slot);

  ObjectEntry& at(int64_t slot) { return slots_[slot]; }
  uint64_t live() const { return st_->live; }
  uint64_t capacity() const { return st_->capacity; }
  /// The most entries the table accepts (7/8 of its capacity, to keep probes short).
  uint64_t limit() const { return st_->capacity - st_->capacity / 8; }

  /// Recounts `live` after a process died holding the lock.
  void recount();
  /// Verifies the invariants; returns the first violation.
  Status check() const;

 private:
  uint64_t mask() const { return st_->capacity - 1; }
  TableState* st_;
  ObjectEntry* slots_;
};

}  // namespace ember
