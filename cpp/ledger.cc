// Ledger: per-process holds, linear probing with tombstones.
#include "ledger.h"

namespace ember {

void Ledger::add(const ObjectID& id, int32_t refs, int32_t pins) {
  const uint32_t mask = capacity_ - 1;
  uint32_t i = static_cast<uint32_t>(id.lo) & mask;
  int64_t reuse = -1;
  for (uint32_t n = 0; n < capacity_; ++n, i = (i + 1) & mask) {
    LedgerEntry& e = slots_[i];
    if (e.state == kEmpty) break;
    if (e.state == kTombstone) {
      if (reuse < 0) reuse = i;
      continue;
    }
    if (e.id != id) continue;
    e.refs += refs;
    e.pins += pins;
    if (e.refs <= 0 && e.pins <= 0) {
      e.state = kTombstone;
      e.refs = e.pins = 0;
      --head_->live;
      // Tombstones followed by an empty slot end every probe chain here: clear them.
      if (slots_[(i + 1) & mask].state == kEmpty) {
        for (uint32_t k = 0; k < capacity_ && slots_[i].state == kTombstone; ++k) {
          slots_[i].state = kEmpty;
          i = (i - 1) & mask;
        }
      }
    }
    return;
  }
  if (refs <= 0 && pins <= 0) return;  // releasing something never recorded (overflow)
  uint32_t slot = reuse >= 0 ? static_cast<uint32_t>(reuse) : i;
  if (slots_[slot].state == kLive || head_->live >= capacity_ - capacity_ / 8) {
    head_->overflowed = 1;
    return;
  }
  slots_[slot] = LedgerEntry{id, refs, pins, kLive, 0};
  ++head_->live;
}

}  // namespace ember
