// ObjectTable: linear probing over the segment's entry array, with per-page counters that
// keep untouched pages untouched and tombstones only where a probe chain needs them.
#include "object_table.h"

#include <cstring>
#include <string>

namespace ember {

void ObjectTable::init(TableState* st, uint64_t capacity) {
  st->capacity = capacity;
  st->live = 0;
  st->max_displacement = 0;
  st->trim_cursor = 0;
  std::memset(st->counters_touched, 0, sizeof st->counters_touched);
  // The memfd is zero-filled, so every slot already reads as kEmpty and every page counter
  // as 0; touching the array here would only fault in pages early.
}

int64_t ObjectTable::find(const ObjectID& id) const {
  uint64_t i = home_hash(id) & mask();
  for (uint64_t n = 0; n < st_->capacity; ++n, i = (i + 1) & mask()) {
    // A page with no entries is all EMPTY: the probe ends without reading (and so without
    // allocating) it. Checked where a probe enters a page.
    if ((n == 0 || i % kSlotsPerPage == 0) && count(i / kSlotsPerPage) == 0) return -1;
    const ObjectEntry& e = slots_[i];
    if (e.state == SlotState::kEmpty) return -1;
    if (e.state != SlotState::kTombstone && e.id == id) return static_cast<int64_t>(i);
  }
  return -1;
}

Result<int64_t> ObjectTable::insert(const ObjectID& id, int32_t owner_pid, uint64_t payload,
                                    uint64_t size, SlotState state) {
  if (st_->live >= limit()) {
    return Status(StatusCode::kTableFull,
                  "the object table is full: its " + std::to_string(limit()) +
                      " entries are all in use (" + std::to_string(st_->live) +
                      " objects, promised task returns included)");
  }
  int64_t reuse = -1;
  const uint64_t home = home_hash(id) & mask();
  uint64_t i = home;
  for (uint64_t n = 0; n < st_->capacity; ++n, i = (i + 1) & mask()) {
    if ((n == 0 || i % kSlotsPerPage == 0) && count(i / kSlotsPerPage) == 0) break;
    ObjectEntry& e = slots_[i];
    if (e.state == SlotState::kEmpty) break;
    if (e.state == SlotState::kTombstone) {
      if (reuse < 0) reuse = static_cast<int64_t>(i);
    } else if (e.id == id) {
      return Status(StatusCode::kAlreadyExists, "object already exists");
    }
  }
  int64_t slot = reuse >= 0 ? reuse : static_cast<int64_t>(i);
  ObjectEntry& e = slots_[slot];
  if (e.state == SlotState::kEmpty) count_in(static_cast<uint64_t>(slot));  // before: see top
  st_->max_displacement =
      std::max(st_->max_displacement, (static_cast<uint64_t>(slot) - home) & mask());
  e.id = id;
  e.owner_pid = owner_pid;
  e.payload = payload;
  e.size = size;
  e.refs = 0;
  e.pins = 0;
  e.waiters = 0;
  e.flags = 0;
  e.state = state;  // last: the entry becomes visible complete
  ++st_->live;
  return slot;
}

bool ObjectTable::needed_by_probe(uint64_t slot) const {
  // Case 1: the next slot is EMPTY: no probe chain goes past `slot`.
  // Case 2: entries may sit further from home than we are willing to look: assume needed.
  // Case 3: look at the next max_displacement slots; an entry k slots on whose home is at
  //         least k slots back passes through `slot`. An EMPTY slot ends every chain.
  const uint64_t next = (slot + 1) & mask();
  if (count(next / kSlotsPerPage) == 0 || slots_[next].state == SlotState::kEmpty) return false;
  const uint64_t d = st_->max_displacement;
  if (d > kMaxDisplacementCheck) return true;  // case 2
  for (uint64_t k = 1; k <= d; ++k) {          // case 3
    const uint64_t j = (slot + k) & mask();
    if (count(j / kSlotsPerPage) == 0) return false;
    const ObjectEntry& e = slots_[j];
    if (e.state == SlotState::kEmpty) return false;
    if (e.state != SlotState::kTombstone && ((j - (home_hash(e.id) & mask())) & mask()) >= k) return true;
  }
  return false;
}

void ObjectTable::erase(int64_t slot) {
  slots_[slot].state = SlotState::kTombstone;  // first: the entry disappears at once
  --st_->live;
  uint64_t i = static_cast<uint64_t>(slot);
  if (needed_by_probe(i)) return;
  // No chain passes through `slot`, so none passes through the tombstones right before it
  // either (a chain through them that ended before `slot` would end at them): all go EMPTY.
  for (uint64_t n = 0; n < st_->capacity && slots_[i].state == SlotState::kTombstone; ++n) {
    slots_[i].state = SlotState::kEmpty;
    count_out(i);  // after: see top
    i = (i - 1) & mask();
  }
}

void ObjectTable::recount() {
  uint64_t live = 0, disp = 0;
  for (uint64_t p = 0; p < num_pages(); ++p) {
    if (count(p) == 0) continue;  // never too low: the page is all EMPTY
    uint16_t used = 0;
    const uint64_t end = std::min(st_->capacity, (p + 1) * kSlotsPerPage);
    for (uint64_t i = p * kSlotsPerPage; i < end; ++i) {
      SlotState s = slots_[i].state;
      used += s != SlotState::kEmpty;
      if (is_live(s)) {
        ++live;
        disp = std::max(disp, (i - (home_hash(slots_[i].id) & mask())) & mask());
      }
    }
    page_used_[p] = static_cast<uint16_t>(used | kPageTouched);
  }
  st_->live = live;
  st_->max_displacement = disp;
}

Status ObjectTable::check() const {
  uint64_t live = 0;
  for (uint64_t p = 0; p < num_pages(); ++p) {
    uint64_t used = 0;
    const uint64_t end = std::min(st_->capacity, (p + 1) * kSlotsPerPage);
    // A page counted empty is not read (it may be a hole that reading would allocate); the
    // probes below find any entry in it missing.
    if (count(p) == 0) continue;
    for (uint64_t i = p * kSlotsPerPage; i < end; ++i) {
      const ObjectEntry& e = slots_[i];
      if (e.state == SlotState::kEmpty) continue;
      ++used;
      if (e.state == SlotState::kTombstone) continue;
      ++live;
      if (find(e.id) != static_cast<int64_t>(i)) {
        return Status(StatusCode::kInvalid, "entry unreachable by probing at slot " +
                                                std::to_string(i));
      }
      if (e.refs < 0 || e.pins < 0) {
        return Status(StatusCode::kInvalid, "negative count at slot " + std::to_string(i));
      }
      if (((i - (home_hash(e.id) & mask())) & mask()) > st_->max_displacement) {
        return Status(StatusCode::kInvalid,
                      "entry further from home than max_displacement at slot " +
                          std::to_string(i));
      }
    }
    if (used != count(p)) {
      return Status(StatusCode::kInvalid, "page " + std::to_string(p) + " counts " +
                                              std::to_string(count(p)) + " entries, holds " +
                                              std::to_string(used));
    }
  }
  if (live != st_->live) return Status(StatusCode::kInvalid, "live count is wrong");
  return Status::OK();
}

}  // namespace ember
