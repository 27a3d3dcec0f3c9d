// Allocator: TLSF size classes, splitting, coalescing and the warm-first policy.
#include "allocator.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace ember {

namespace {

uint32_t msb(uint64_t x) { return 63u - static_cast<uint32_t>(__builtin_clzll(x)); }
uint32_t lsb(uint64_t x) { return static_cast<uint32_t>(__builtin_ctzll(x)); }

/// Block sizes below this share first-level class 0, split linearly by 64 bytes.
constexpr uint64_t kSmallLimit = kAlign * kSlCount;  // 1024
constexpr uint32_t kSmallLog2 = 10;

/// The (fl, sl) class of a block of `size` bytes: the list a free block of that size lives in.
void class_of(uint64_t size, uint32_t& fl, uint32_t& sl) {
  if (size < kSmallLimit) {
    fl = 0;
    sl = static_cast<uint32_t>(size / kAlign);
    return;
  }
  uint32_t m = msb(size);
  fl = m - kSmallLog2 + 1;
  sl = static_cast<uint32_t>(size >> (m - kSlLog2)) - kSlCount;
}

/// Rounds `size` up so that every block in its class is at least that large ("good fit").
uint64_t round_to_class(uint64_t size) {
  if (size < kSmallLimit) return size;
  uint64_t step = (uint64_t{1} << (msb(size) - kSlLog2)) - 1;
  return (size + step) & ~step;
}

/// Requests up to this size prefer the wilderness to splitting a block of kLargeBlock or more.
constexpr uint64_t kSmallRequest = uint64_t{256} << 10;
constexpr uint64_t kLargeBlock = uint64_t{4} << 20;

uint64_t block_size_for(uint64_t payload) {
  uint64_t s = (payload + kAlign - 1) / kAlign * kAlign + kAlign;
  return s < kMinBlock ? kMinBlock : s;
}

}  // namespace

void Allocator::init(AllocatorState* st, uint64_t begin, uint64_t end) {
  std::memset(static_cast<void*>(st), 0, sizeof(AllocatorState));
  st->heap_begin = (begin + kAlign - 1) / kAlign * kAlign;
  st->heap_end = end / kAlign * kAlign;
  // relaxed: the creator publishes the whole segment with the magic's release (segment.h).
  st->top.store(st->heap_begin, std::memory_order_relaxed);
}

void Allocator::reset_lists() {
  st_->fl_bitmap = 0;
  std::memset(st_->sl_bitmap, 0, sizeof(st_->sl_bitmap));
  std::memset(st_->heads, 0, sizeof(st_->heads));
  st_->used_bytes = 0;
  st_->used_blocks = 0;
}

void Allocator::insert_free(uint64_t off) {
  BlockHeader* b = block(off);
  uint32_t fl, sl;
  class_of(b->size, fl, sl);
  uint64_t head = st_->heads[fl][sl];
  b->free = 1;
  b->prev_free = 0;
  b->next_free = head;
  if (head != 0) block(head)->prev_free = off;
  st_->heads[fl][sl] = off;
  st_->sl_bitmap[fl] |= 1u << sl;
  st_->fl_bitmap |= uint64_t{1} << fl;
}

void Allocator::remove_free(uint64_t off) {
  BlockHeader* b = block(off);
  uint32_t fl, sl;
  class_of(b->size, fl, sl);
  if (b->prev_free != 0) {
    block(b->prev_free)->next_free = b->next_free;
  } else {
    st_->heads[fl][sl] = b->next_free;
  }
  if (b->next_free != 0) block(b->next_free)->prev_free = b->prev_free;
  if (st_->heads[fl][sl] == 0) {
    st_->sl_bitmap[fl] &= ~(1u << sl);
    if (st_->sl_bitmap[fl] == 0) st_->fl_bitmap &= ~(uint64_t{1} << fl);
  }
  b->free = 0;
  b->next_free = b->prev_free = 0;
}

uint64_t Allocator::find_fit(uint64_t size) const {
  uint64_t want = round_to_class(size);
  uint32_t fl, sl;
  class_of(want, fl, sl);
  if (fl >= kFlCount) return 0;
  uint32_t sl_map = st_->sl_bitmap[fl] & (~0u << sl);
  if (sl_map == 0) {
    uint64_t fl_map = (fl + 1 < 64) ? st_->fl_bitmap & (~uint64_t{0} << (fl + 1)) : 0;
    if (fl_map != 0) {
      fl = lsb(fl_map);
      return st_->heads[fl][lsb(st_->sl_bitmap[fl])];
    }
    // Nothing in a larger class. Before touching the wilderness (or failing), look for a
    // big-enough block in `size`'s own class, which good fit skips: a block freed by an object
    // of the same size is warm and fits exactly. This walk is the one O(n) step, and only
    // over one class's list when nothing larger is free.
    class_of(size, fl, sl);
    for (uint64_t off = st_->heads[fl][sl]; off != 0; off = block(off)->next_free) {
      if (block(off)->size >= size) return off;
    }
    return 0;
  }
  return st_->heads[fl][lsb(sl_map)];
}

void Allocator::trim(uint64_t off, uint64_t want) {
  BlockHeader* b = block(off);
  uint64_t rest = b->size - want;
  if (rest < kMinBlock) return;
  uint64_t r_off = off + want;
  BlockHeader* r = block(r_off);
  // Crash order: the remainder's header and its successor's back link first, the size that
  // exposes it last (see the invariants).
  std::memset(static_cast<void*>(r), 0, sizeof(BlockHeader));
  r->size = rest;
  r->prev_phys = off;
  r->magic = kBlockMagic;
  uint64_t next = off + b->size;
  if (next < top()) {
    block(next)->prev_phys = r_off;
  } else {
    st_->last_block = r_off;
  }
  b->size = want;
  // Coalesce the remainder with a free successor, then list it.
  if (next < top() && block(next)->free) {
    remove_free(next);
    r->size += block(next)->size;
    uint64_t after = r_off + r->size;
    if (after < top()) {
      block(after)->prev_phys = r_off;
    } else {
      st_->last_block = r_off;
    }
  }
  insert_free(r_off);
}

Result<uint64_t> Allocator::allocate(uint64_t size, uint64_t tag_hi, uint64_t tag_lo) {
  if (size > st_->heap_end - st_->heap_begin) {
    return Status(StatusCode::kStoreFull, "larger than the whole store");
  }
  uint64_t want = block_size_for(size);
  uint64_t off = find_fit(want);
  // Small objects do not split large free blocks while the wilderness has room: a big
  // block freed by one large object stays whole for the next (the pattern of arguments
  // passed by value, interleaved with small results). See kSmallRequest.
  if (off != 0 && want <= kSmallRequest && block(off)->size >= kLargeBlock &&
      st_->heap_end - top() >= want) {
    off = 0;
  }
  if (off != 0) {
    remove_free(off);
  } else {
    // No free block fits: grow into the wilderness, absorbing a free last block first.
    uint64_t avail = st_->heap_end - top();
    uint64_t last = st_->last_block;
    if (last != 0 && block(last)->free && block(last)->size + avail >= want) {
      remove_free(last);
      off = last;
      uint64_t grow = want > block(last)->size ? want - block(last)->size : 0;
      block(last)->size += grow;  // before top: a torn walk is cut at this block by rebuild()
      set_top(top() + grow);
    } else if (avail >= want) {
      off = top();
      BlockHeader* b = block(off);
      std::memset(static_cast<void*>(b), 0, sizeof(BlockHeader));
      b->size = want;
      b->prev_phys = st_->last_block;
      b->magic = kBlockMagic;
      set_top(top() + want);  // after the header: a crash before this leaves the block unseen
      st_->last_block = off;
    } else {
      return Status(StatusCode::kStoreFull, "no free block large enough");
    }
  }
  trim(off, want);
  BlockHeader* b = block(off);
  b->free = 0;
  b->cold = 0;  // about to be written: its pages come back
  b->tag_hi = tag_hi;
  b->tag_lo = tag_lo;
  st_->used_bytes += b->size;
  ++st_->used_blocks;
  return off + kAlign;
}

void Allocator::free(uint64_t payload) {
  uint64_t off = payload - kAlign;
  BlockHeader* b = block(off);
  st_->used_bytes -= b->size;
  --st_->used_blocks;
  b->tag_hi = b->tag_lo = 0;
  // Merge with a free successor: one size store makes it part of this block.
  uint64_t next = off + b->size;
  if (next < top() && block(next)->free) {
    remove_free(next);
    b->size += block(next)->size;
  }
  // Merge into a free predecessor.
  if (b->prev_phys != 0 && block(b->prev_phys)->free) {
    uint64_t p = b->prev_phys;
    remove_free(p);
    block(p)->size += b->size;
    off = p;
    b = block(p);
  }
  uint64_t after = off + b->size;
  if (after < top()) {
    block(after)->prev_phys = off;
  } else {
    st_->last_block = off;
  }
  b->cold = 0;  // (a merged block may hold warm pages: it is trimmed again when idle)
  insert_free(off);
}

std::vector<std::pair<uint64_t, uint64_t>> Allocator::warm_free_blocks(uint64_t min_size) const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (uint32_t fl = 0; fl < kFlCount; ++fl) {
    for (uint32_t sl = 0; sl < kSlCount; ++sl) {
      for (uint64_t f = st_->heads[fl][sl]; f != 0; f = block(f)->next_free) {
        const BlockHeader* b = block(f);
        if (b->cold == 0 && b->size - kAlign >= min_size) out.emplace_back(f + kAlign, b->size - kAlign);
      }
    }
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.second > b.second; });
  return out;
}

bool Allocator::take_for_trim(uint64_t payload, uint64_t bytes) {
  uint64_t off = payload - kAlign;
  if (off < st_->heap_begin || off >= top()) return false;
  BlockHeader* b = block(off);
  if (b->magic != kBlockMagic || !b->free || b->cold || b->size != bytes + kAlign) return false;
  remove_free(off);  // now "used" with no tag: rebuild() would free it if we died here
  b->tag_hi = b->tag_lo = 0;
  st_->used_bytes += b->size;
  ++st_->used_blocks;
  return true;
}

void Allocator::return_trimmed(uint64_t payload, uint64_t bytes) {
  free(payload);
  BlockHeader* b = block(payload - kAlign);
  // Marked cold only if free() did not merge it with a neighbour (whose pages may be warm).
  if (b->free && b->size == bytes + kAlign) b->cold = 1;
}

uint64_t Allocator::usable_size(uint64_t payload) const {
  return block(payload - kAlign)->size - kAlign;
}

uint64_t Allocator::largest_free() const {
  uint64_t best = 0;
  if (st_->fl_bitmap != 0) {
    uint32_t fl = msb(st_->fl_bitmap);
    for (uint64_t off = st_->heads[fl][msb(st_->sl_bitmap[fl])]; off != 0;
         off = block(off)->next_free) {
      if (block(off)->size > best) best = block(off)->size;
    }
  }
  uint64_t tail = st_->heap_end - top();
  if (st_->last_block != 0 && block(st_->last_block)->free) tail += block(st_->last_block)->size;
  if (tail > best) best = tail;
  return best > kAlign ? best - kAlign : 0;
}

AllocatorStats Allocator::stats() const {
  return AllocatorStats{st_->heap_end - st_->heap_begin, st_->used_bytes, st_->used_blocks,
                        top() - st_->heap_begin, largest_free()};
}

Status Allocator::check() const {
  auto fail = [](const std::string& what, uint64_t off) {
    return Status(StatusCode::kInvalid, what + " at offset " + std::to_string(off));
  };
  uint64_t prev = 0, used = 0, used_blocks = 0, free_blocks = 0;
  bool prev_free = false;
  uint64_t off = st_->heap_begin;
  for (; off < top(); off += block(off)->size) {
    const BlockHeader* b = block(off);
    if (b->magic != kBlockMagic) return fail("bad block magic", off);
    if (b->size < kMinBlock || b->size % kAlign != 0) return fail("bad block size", off);
    if (b->prev_phys != prev) return fail("bad prev_phys link", off);
    if (b->free && prev_free) return fail("two adjacent free blocks", off);
    if (b->free) {
      ++free_blocks;
    } else {
      used += b->size;
      ++used_blocks;
    }
    prev_free = b->free != 0;
    prev = off;
  }
  if (off != top()) return fail("blocks overrun top", off);
  if (prev != st_->last_block) return fail("last_block is wrong", st_->last_block);
  if (used != st_->used_bytes || used_blocks != st_->used_blocks) {
    return fail("used counters disagree with the blocks", used);
  }
  uint64_t listed = 0;
  for (uint32_t fl = 0; fl < kFlCount; ++fl) {
    for (uint32_t sl = 0; sl < kSlCount; ++sl) {
      bool bit = (st_->sl_bitmap[fl] >> sl) & 1u;
      if (bit != (st_->heads[fl][sl] != 0)) return fail("bitmap disagrees with list", fl);
      uint64_t back = 0;
      for (uint64_t f = st_->heads[fl][sl]; f != 0; f = block(f)->next_free) {
        uint32_t cfl, csl;
        class_of(block(f)->size, cfl, csl);
        if (!block(f)->free || cfl != fl || csl != sl) return fail("free list holds wrong block", f);
        if (block(f)->prev_free != back) return fail("bad prev_free link", f);
        back = f;
        ++listed;
      }
    }
    if (((st_->fl_bitmap >> fl) & 1u) != (st_->sl_bitmap[fl] != 0)) {
      return fail("first-level bitmap disagrees", fl);
    }
  }
  if (listed != free_blocks) return fail("free blocks missing from lists", listed);
  return Status::OK();
}

}  // namespace ember
