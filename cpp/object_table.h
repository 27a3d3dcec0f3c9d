// ObjectTable: the node's index of objects (id -> state, location, reference counts, pins).
//
// Invariants (all hold whenever the store lock is free; every call is made under it):
//  - Open addressing with linear probing over a power-of-two array in the segment. An id's
//    home slot is its sequence number modulo the capacity, so ids issued in order fill the
//    table in order (cache- and page-friendly) and collide only after a full wrap. A
//    stream's items (kStreamIdBit) hash their task's number instead: see home_hash.
//  - A slot is EMPTY, TOMBSTONE (erased; probing continues past it) or LIVE (PENDING,
//    CREATED, SEALED or SPILLED).
//  - A slot's `state` is written last on insert and first on erase, so a process that dies
//    mid-call leaves either the old or the new entry visible, never a torn one.
//  - An object is immutable once SEALED: its payload bytes are never written again.
//  - `refs` counts ObjectRefs (node-wide); `pins` counts readers and the writer of a
//    CREATED object. The store frees an object when both reach zero.
//
// Size and memory. The table is sized for many more objects than a node usually holds (10M
// and up, see store.cc); it costs memory only where it is used, because the memfd's pages are
// allocated on first touch. Three rules keep it that way:
//  - Pages. The slots are grouped in pages of kSlotsPerPage (one 4 KiB memory page). A
//    counter per page, `page_used`, is at least the number of its non-EMPTY slots (incremented
//    before a slot leaves EMPTY, decremented after it returns to EMPTY, so a crash leaves it
//    too high, never too low; recount() makes it exact). A page whose counter is 0 is all
//    EMPTY, so find() and the scans never read it: a read of a memfd hole would allocate it.
//    Its kPageTouched bit says the page may be resident; trim() gives such pages whose
//    counter is 0 back to the kernel and clears the bit. The counters themselves are read
//    only in their 4 KiB pages that TableState::counters_touched marks (for the same reason).
//  - Displacement. `max_displacement` is at least the largest (slot - home) of any entry
//    (inserts raise it; recount() recomputes it). An erased slot needs to stay a TOMBSTONE
//    only if a live entry within max_displacement slots after it has its home at or before
//    it; otherwise it becomes EMPTY at once, and so does the run of tombstones before it.
//    Ids issued in order never collide before a wrap, so then no tombstone is ever left and
//    a page becomes all EMPTY as soon as its objects are gone.
//  - Beyond kMaxDisplacementCheck the check is not worth it: such erasures leave a
//    tombstone, as a plain linear-probing table does, until the trailing run is cleaned.
#pragma once

#include <algorithm>
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

/// Ids whose low word has bit 62 (and not bit 63, kNamedIdBit of object_format.h) are the
/// items of a streaming generator (store.h, "Streams"): bits 24-61 hold the sequence number
/// of the generator's task return and bits 0-23 the item's index, so that producer, consumer
/// and a retry all name item k without telling each other. Store::new_id never reaches them.
inline constexpr uint64_t kStreamIdBit = uint64_t{1} << 62;
inline constexpr uint32_t kStreamIndexBits = 24;
inline constexpr uint64_t kMaxStreamItems = uint64_t{1} << kStreamIndexBits;
inline constexpr uint64_t kMaxStreamTaskSeq = uint64_t{1} << (62 - kStreamIndexBits);
/// Item `index` of the stream of the task whose first return is `done`.
inline ObjectID stream_item_id(const ObjectID& done, uint64_t index) {
  return ObjectID{done.hi, kStreamIdBit | (done.lo << kStreamIndexBits) | index};
}
inline bool is_stream_item(const ObjectID& id) { return (id.lo >> 62) == 1; }

/// An id's home slot before masking: its sequence number, so ids issued in order fill the
/// table in order. A stream's items share their task's sequence number, so theirs is mixed
/// (Fibonacci hashing) and then offset by the index: one stream's items sit side by side, and
/// streams of neighbouring tasks land far apart instead of on each other's slots.
inline uint64_t home_hash(const ObjectID& id) {
  if (!is_stream_item(id)) return id.lo;
  const uint64_t task = (id.lo & ~kStreamIdBit) >> kStreamIndexBits;
  return (task * 0x9E3779B97F4A7C15ULL) + (id.lo & (kMaxStreamItems - 1));
}

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
  kEntryRead = 16,      ///< a failure some process has pinned (read): it was not unhandled
};
/// Bits 8-15 of ObjectEntry::flags, beside the EntryFlags: while kEntrySpilling is set, the
/// batch that set it (its slot in SpillControl::batches, spill.h S7), so that the victims of
/// a spiller that died can be told from those of a living one. 0 otherwise.
inline constexpr uint32_t kEntryBatchShift = 8;
inline constexpr uint32_t kEntryBatchMask = uint32_t{0xFF} << kEntryBatchShift;

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
  uint32_t flags;     ///< EntryFlags, and the spilling batch (kEntryBatchMask)
  union {
    uint64_t last_access;  ///< in memory: the store's access clock at the last pin (LRU)
    uint64_t spilled_at;   ///< SPILLED, and CREATED while restoring: its spill file and offset
  };
};
static_assert(sizeof(ObjectEntry) == 64);

/// The most slots a table may have: 16 GiB of address space, 234M objects at the limit.
inline constexpr uint64_t kMaxTableCapacity = uint64_t{1} << 28;

/// The table's shared counters (in the segment).
struct TableState {
  uint64_t capacity;          ///< a power of two
  uint64_t live;              ///< PENDING + CREATED + SEALED + SPILLED slots
  uint64_t max_displacement;  ///< >= (slot - home) of every entry (see the invariants)
  uint64_t trim_cursor;       ///< the page trim() looks at next
  /// Bit c: the c-th 4 KiB page of page counters may be non-zero (set before its first
  /// increment). The counters are read only where this is set: reading a memfd hole
  /// allocates it, and 16 Mi slots have 512 KiB of counters.
  uint64_t counters_touched[kMaxTableCapacity / 64 / 2048 / 64];
};

class ObjectTable {
 public:
  static constexpr uint64_t kSlotsPerPage = 4096 / sizeof(ObjectEntry);
  static constexpr uint16_t kPageTouched = 0x8000;  ///< in page_used: may be resident
  static constexpr uint64_t kMaxDisplacementCheck = 64;

  /// Bytes of segment a table of `capacity` slots needs: the page counters, then the slots
  /// (page aligned).
  static uint64_t bytes(uint64_t capacity) { return slots_at(capacity) + capacity * sizeof(ObjectEntry); }
  /// Where the slots begin in the table's region.
  static uint64_t slots_at(uint64_t capacity) {
    uint64_t pages = (capacity + kSlotsPerPage - 1) / kSlotsPerPage;
    return (pages * sizeof(uint16_t) + 4095) / 4096 * 4096;
  }

  /// `region`: bytes(capacity) zeroed bytes, 4 KiB aligned, with `st` initialised by init().
  ObjectTable(TableState* st, uint8_t* region)
      : st_(st),
        page_used_(reinterpret_cast<uint16_t*>(region)),
        slots_(reinterpret_cast<ObjectEntry*>(region + slots_at(st->capacity))) {}

  /// Initialises an empty table of `capacity` slots (a power of two) (creator only).
  static void init(TableState* st, uint64_t capacity);

  /// The slot holding `id`, or -1.
  int64_t find(const ObjectID& id) const;
  /// Adds `id` in `state` (CREATED or PENDING) and returns its slot; kAlreadyExists or
  /// kTableFull.
  Result<int64_t> insert(const ObjectID& id, int32_t owner_pid, uint64_t payload, uint64_t size,
                         SlotState state = SlotState::kCreated);
  /// Removes the entry in `slot` (its slot becomes EMPTY unless a probe chain needs it).
  void erase(int64_t slot);

  ObjectEntry& at(int64_t slot) { return slots_[slot]; }
  uint64_t live() const { return st_->live; }
  uint64_t capacity() const { return st_->capacity; }
  /// The most entries the table accepts (7/8 of its capacity, to keep probes short).
  uint64_t limit() const { return st_->capacity - st_->capacity / 8; }

  /// Calls f(slot, entry) for every LIVE entry, reading only pages that hold entries.
  template <typename F>
  void for_each_live(F&& f) {
    const uint64_t pages = num_pages();
    for (uint64_t p = 0; p < pages; ++p) {
      if (count(p) == 0) continue;
      const uint64_t end = std::min(st_->capacity, (p + 1) * kSlotsPerPage);
      for (uint64_t i = p * kSlotsPerPage; i < end; ++i) {
        if (is_live(slots_[i].state)) f(static_cast<int64_t>(i), slots_[i]);
      }
    }
  }

  /// Looks at up to `max_pages` pages from where the last call stopped and calls
  /// punch(first_slot, n_slots) for each run of pages that are all EMPTY and may be resident
  /// (they read as zero, i.e. EMPTY, after the punch). Returns the pages handed to punch.
  template <typename F>
  uint64_t trim(uint64_t max_pages, F&& punch) {
    const uint64_t pages = num_pages();
    uint64_t p = st_->trim_cursor % pages, given = 0;
    for (uint64_t n = 0; n < std::min(max_pages, pages);) {
      if (!counters_touched(p)) {  // a whole counter page never used: skip it unread
        uint64_t skip = std::min(kCountersPerPage - p % kCountersPerPage, pages - p);
        n += skip;
        p = (p + skip) % pages;
        continue;
      }
      uint64_t run = 0;
      while (n + run < max_pages && p + run < pages && counters_touched(p + run) &&
             page_used_[p + run] == kPageTouched) {
        ++run;
      }
      if (run > 0) {
        punch(p * kSlotsPerPage, std::min(st_->capacity, (p + run) * kSlotsPerPage) - p * kSlotsPerPage);
        for (uint64_t k = 0; k < run; ++k) page_used_[p + k] = 0;
        given += run;
      } else {
        run = 1;
      }
      n += run;
      p = (p + run) % pages;
    }
    st_->trim_cursor = p;
    return given;
  }
  uint64_t num_pages() const { return (st_->capacity + kSlotsPerPage - 1) / kSlotsPerPage; }
  /// Non-EMPTY slots counted in page `p` (an upper bound after a crash; see the invariants).
  uint64_t count(uint64_t p) const { return counters_touched(p) ? page_used_[p] & ~kPageTouched : 0; }
  static constexpr uint64_t kCountersPerPage = 4096 / sizeof(uint16_t);
  static bool is_live(SlotState s) { return s != SlotState::kEmpty && s != SlotState::kTombstone; }

  /// Recounts `live`, the page counters and the displacement after a process died holding
  /// the lock.
  void recount();
  /// Verifies the invariants; returns the first violation.
  Status check() const;

 private:
  uint64_t mask() const { return st_->capacity - 1; }
  bool counters_touched(uint64_t p) const {
    const uint64_t c = p / kCountersPerPage;
    return (st_->counters_touched[c / 64] >> (c % 64)) & 1;
  }
  /// Marks slot `i` about to leave EMPTY (before its state is written).
  void count_in(uint64_t i) {
    const uint64_t c = i / kSlotsPerPage / kCountersPerPage;
    st_->counters_touched[c / 64] |= uint64_t{1} << (c % 64);
    uint16_t& u = page_used_[i / kSlotsPerPage];
    u = static_cast<uint16_t>((u + 1) | kPageTouched);
  }
  /// Notes that slot `i` has just become EMPTY.
  void count_out(uint64_t i) { --page_used_[i / kSlotsPerPage]; }
  /// True if some live entry's probe path from its home runs through `slot`.
  bool needed_by_probe(uint64_t slot) const;
  TableState* st_;
  uint16_t* page_used_;  ///< per page: its non-EMPTY slots, | kPageTouched
  ObjectEntry* slots_;
};

}  // namespace ember
