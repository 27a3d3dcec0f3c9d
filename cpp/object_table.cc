// ObjectTable: linear probing with tombstones over the segment's entry array.
#include "object_table.h"

#include <cstring>
#include <string>

namespace ember {

void ObjectTable::init(TableState* st, ObjectEntry* slots, uint64_t capacity) {
  st->capacity = capacity;
  st->live = 0;
  // The memfd is zero-filled, so every slot already reads as kEmpty; touching the array
  // here would only fault in pages early.
  (void)slots;
}

int64_t ObjectTable::find(const ObjectID& id) const {
  uint64_t i = id.lo & mask();
  for (uint64_t n = 0; n < st_->capacity; ++n, i = (i + 1) & mask()) {
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
                  "the object table is full (" + std::to_string(st_->live) + " objects)");
  }
  int64_t reuse = -1;
  uint64_t i = id.lo & mask();
  for (uint64_t n = 0; n < st_->capacity; ++n, i = (i + 1) & mask()) {
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

void ObjectTable::erase(int64_t slot) {
  slots_[slot].state = SlotState::kTombstone;  // first: the entry disappears at once
  --st_->live;
  // If the next slot ends every probe chain here, the tombstones before it are not needed.
  uint64_t i = static_cast<uint64_t>(slot);
  if (slots_[(i + 1) & mask()].state != SlotState::kEmpty) return;
  for (uint64_t n = 0; n < st_->capacity && slots_[i].state == SlotState::kTombstone; ++n) {
    slots_[i].state = SlotState::kEmpty;
    i = (i - 1) & mask();
  }
}

void ObjectTable::recount() {
  uint64_t live = 0;
  for (uint64_t i = 0; i < st_->capacity; ++i) {
    SlotState s = slots_[i].state;
    live += (s == SlotState::kCreated || s == SlotState::kSealed || s == SlotState::kPending);
  }
  st_->live = live;
}

Status ObjectTable::check() const {
  uint64_t live = 0;
  for (uint64_t i = 0; i < st_->capacity; ++i) {
    const ObjectEntry& e = slots_[i];
    if (e.state == SlotState::kEmpty || e.state == SlotState::kTombstone) continue;
    ++live;
    if (find(e.id) != static_cast<int64_t>(i)) {
      return Status(StatusCode::kInvalid, "entry unreachable by probing at slot " +
                                              std::to_string(i));
    }
    if (e.refs < 0 || e.pins < 0) {
      return Status(StatusCode::kInvalid, "negative count at slot " + std::to_string(i));
    }
  }
  if (live != st_->live) return Status(StatusCode::kInvalid, "live count is wrong");
  return Status::OK();
}

}  // namespace ember
