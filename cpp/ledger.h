// Ledger: which objects each process of the node holds, so a dead process's holds can be
// released.
//
// Invariants (every call is made under the store lock):
//  - One fixed-size open-addressed table per client (a worker slot), in the segment, so the
//    driver can read a dead worker's table. Client 0 is the driver, whose death ends the node:
//    it keeps no ledger.
//  - An entry counts the ObjectRefs and the views (pins) that one process holds on one object;
//    it mirrors exactly what that process added to the object table's refs and pins. Counts
//    held on a process's behalf by something else (a task's hold on its arguments, a container
//    object's hold on nested refs) are not in any ledger: they are released by their holder.
//  - An entry whose counts reach zero becomes a tombstone; trailing tombstones become empty.
//  - A full ledger drops new entries (the process's holds then outlive it: a leak, not a
//    crash); `overflowed` records that it happened.
#pragma once

#include <cstdint>
#include <vector>

#include "object_table.h"

namespace ember {

struct LedgerEntry {
  ObjectID id;
  int32_t refs;
  int32_t pins;  ///< with state: 0 empty, -1 tombstone (refs is then 0)
  uint32_t state;
  uint32_t reserved;
};
static_assert(sizeof(LedgerEntry) == 32);

/// The head of one client's ledger.
struct LedgerHeader {
  uint32_t live;
  uint32_t overflowed;  ///< 1 once an entry could not be added
  uint32_t reserved[14];
};
static_assert(sizeof(LedgerHeader) == 64);

class Ledger {
 public:
  /// The ledger of one client in the region at `base` (`capacity` entries, a power of two).
  Ledger(uint8_t* base, uint32_t capacity) : head_(reinterpret_cast<LedgerHeader*>(base)),
        slots_(reinterpret_cast<LedgerEntry*>(base + sizeof(LedgerHeader))), capacity_(capacity) {}

  /// Bytes one client's ledger takes.
  static uint64_t bytes(uint32_t capacity) {
    return sizeof(LedgerHeader) + uint64_t{capacity} * sizeof(LedgerEntry);
  }

  /// Adds (or, negative, removes) refs and pins this client holds on `id`.
  void add(const ObjectID& id, int32_t refs, int32_t pins);
  /// Calls `fn(id, refs, pins)` for every entry, then empties the ledger.
  template <typename Fn>
  void drain(Fn fn) {
    for (uint32_t i = 0; i < capacity_; ++i) {
      LedgerEntry& e = slots_[i];
      if (e.state == kLive) fn(e.id, e.refs, e.pins);
      e = LedgerEntry{};
    }
    head_->live = 0;
    head_->overflowed = 0;
  }
  /// Calls `fn(id, refs, pins)` for every entry.
  template <typename Fn>
  void for_each(Fn fn) const {
    for (uint32_t i = 0; i < capacity_; ++i) {
      const LedgerEntry& e = slots_[i];
      if (e.state == kLive) fn(e.id, e.refs, e.pins);
    }
  }
  uint32_t live() const { return head_->live; }
  bool overflowed() const { return head_->overflowed != 0; }

 private:
  static constexpr uint32_t kEmpty = 0, kLive = 1, kTombstone = 2;
  LedgerHeader* head_;
  LedgerEntry* slots_;
  uint32_t capacity_;
};

}  // namespace ember
