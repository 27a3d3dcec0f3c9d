// Allocator: a two-level segregated-fit (TLSF) allocator over the segment's object heap.
//
// Invariants (all hold whenever the store lock is free):
//  - Blocks tile [heap_begin, top) exactly: each starts with a 64-byte BlockHeader whose
//    `size` (header included, a multiple of 64) leads to the next block; `prev_phys` names
//    the previous one. [top, heap_end) is the wilderness: never handed out, never touched
//    by the allocator (its pages may not exist yet).
//  - Payloads start 64 bytes after their block, so they are 64-byte aligned.
//  - No two free blocks are physically adjacent (free() coalesces both ways).
//  - A free block is in exactly one free list: the one of its size class; bit (fl, sl) of
//    the bitmaps is set iff that list is non-empty.
//  - Warm first: a request is served from free blocks (memory already touched) before the
//    wilderness; the wilderness is cut only when no free block fits. One exception keeps
//    large blocks whole: a small request (<= 256 KiB) takes the wilderness rather than split
//    a free block of 4 MiB or more, while the wilderness has room.
//  - Crash tolerance: every split and merge writes so that walking blocks by `size` from
//    heap_begin always reaches `top` (a new block header is written before the size that
//    exposes it). rebuild() recomputes everything else (prev links, free lists, bitmaps,
//    counters) from that walk, which is how the store recovers from a process that died
//    while holding the lock.
//  - All state lives in AllocatorState inside the segment; Allocator is a per-process view.
//    The caller holds the store lock around every call.
//
// Costs: free is O(1); allocate is O(1) (two bitmap scans and list splices) except when no
// larger class has a block, when it walks the request's own class list before growing.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "status.h"

namespace ember {

inline constexpr uint64_t kAlign = 64;          ///< payload alignment and size granularity
inline constexpr uint32_t kSlLog2 = 4;          ///< 16 second-level classes per power of two
inline constexpr uint32_t kSlCount = 1u << kSlLog2;
inline constexpr uint32_t kFlCount = 48;        ///< covers blocks up to 2^52 bytes
inline constexpr uint64_t kMinBlock = 2 * kAlign;  ///< header + the smallest payload

/// The header at the start of every block (64 bytes: one cache line).
struct BlockHeader {
  uint64_t size;       ///< whole block, header included; multiple of 64
  uint64_t prev_phys;  ///< offset of the physically previous block; 0 for the first
  uint64_t next_free;  ///< free-list links (offsets; 0 = none), valid while free
  uint64_t prev_free;
  uint64_t tag_hi;     ///< owner tag while used (the object id), so rebuild() can
  uint64_t tag_lo;     ///< find blocks that no object claims
  uint32_t free;       ///< 1 while free
  uint32_t magic;      ///< kBlockMagic: catches corrupt offsets in checks
  uint64_t cold;       ///< 1: a free block whose pages were given back to the kernel
};
static_assert(sizeof(BlockHeader) == kAlign);
inline constexpr uint32_t kBlockMagic = 0xB10C'E3BE;

/// The allocator's shared state (in the segment).
struct AllocatorState {
  uint64_t heap_begin;  ///< offset of the first block (64-aligned)
  uint64_t heap_end;    ///< end of the heap
  /// End of the last block: the high-water mark. Written only under the store lock (by
  /// allocate(), which grows it, and rebuild(), which may cut a torn tail back). Read under
  /// the lock by the allocator and the store, and without it by the prefaulter
  /// (residency.h), which only uses it to choose pages to warm. Every access is relaxed:
  /// whoever acts on the blocks below top holds the lock, whose acquire/release already
  /// orders top with the block headers it covers; the one unlocked reader touches no block,
  /// so it needs a value that is not torn (hence an atomic, not a plain word) and no order.
  std::atomic<uint64_t> top;
  uint64_t last_block;  ///< offset of the physically last block; 0 when there is none
  uint64_t used_bytes;  ///< sum of sizes of used blocks (headers included)
  uint64_t used_blocks;
  uint64_t fl_bitmap;
  uint32_t sl_bitmap[kFlCount];
  uint64_t heads[kFlCount][kSlCount];
};
// The state is shared by processes that map the segment at different addresses, and top is
// read there without the lock: its atomic must be address-free (lock-free) and a plain
// 64-bit word, so that the layout is the one of version 2 (a uint64_t top at offset 16).
static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "AllocatorState::top is read without the lock by other processes");
static_assert(sizeof(std::atomic<uint64_t>) == sizeof(uint64_t) &&
                  alignof(std::atomic<uint64_t>) == alignof(uint64_t),
              "std::atomic<uint64_t> must be a plain 64-bit word in the segment");
static_assert(std::is_standard_layout_v<AllocatorState>, "offsetof below needs standard layout");
static_assert(offsetof(AllocatorState, top) == 16 && offsetof(AllocatorState, heads) == 248 &&
                  sizeof(AllocatorState) == 6392,
              "the segment layout changed: bump kSegmentVersion (segment.h)");

/// Counters for messages, tests and benchmarks.
struct AllocatorStats {
  uint64_t capacity;       ///< heap bytes
  uint64_t used_bytes;     ///< bytes in used blocks, headers included
  uint64_t used_blocks;
  uint64_t high_water;     ///< bytes ever touched (top - heap_begin)
  uint64_t largest_free;   ///< the largest payload a single allocation could get now
};

class Allocator {
 public:
  Allocator(uint8_t* base, AllocatorState* st) : base_(base), st_(st) {}

  /// Initialises the shared state for the heap [begin, end) (creator only).
  static void init(AllocatorState* st, uint64_t begin, uint64_t end);

  /// Returns the offset of a 64-aligned payload of at least `size` bytes, tagged with
  /// (tag_hi, tag_lo); kStoreFull when no free block nor the wilderness can hold it.
  Result<uint64_t> allocate(uint64_t size, uint64_t tag_hi, uint64_t tag_lo);
  /// Frees the payload at `payload` (an offset returned by allocate).
  void free(uint64_t payload);
  /// Usable bytes of the payload at `payload` (>= the size asked for).
  uint64_t usable_size(uint64_t payload) const;

  /// The high-water mark (AllocatorState::top): exact under the store lock; without it, a
  /// value that was true a moment ago (a hint, for the prefaulter).
  uint64_t top() const { return st_->top.load(std::memory_order_relaxed); }  // see top

  AllocatorStats stats() const;
  /// The largest payload one allocation could get right now.
  uint64_t largest_free() const;

  /// Recomputes links, free lists, bitmaps and counters from a walk of the blocks, after a
  /// process died holding the lock. `keep(tag_hi, tag_lo, payload)` says whether a used block
  /// is still claimed; unclaimed ones are freed. Returns the number of blocks freed.
  template <typename Keep>
  uint64_t rebuild(Keep keep);

  /// Free blocks of at least `min_size` bytes whose pages are still resident (not cold), as
  /// (payload offset, payload bytes), largest first.
  std::vector<std::pair<uint64_t, uint64_t>> warm_free_blocks(uint64_t min_size) const;
  /// Takes the free block whose payload is at `payload` (if it is still free, warm and
  /// `bytes` long) so its pages can be given back without the lock; true if taken.
  bool take_for_trim(uint64_t payload, uint64_t bytes);
  /// Frees a block taken by take_for_trim and marks it cold if it did not merge.
  void return_trimmed(uint64_t payload, uint64_t bytes);

  /// Verifies every invariant above; returns a description of the first violation.
  Status check() const;

 private:
  BlockHeader* block(uint64_t off) const { return reinterpret_cast<BlockHeader*>(base_ + off); }
  /// Under the lock only. relaxed: see AllocatorState::top.
  void set_top(uint64_t top) { st_->top.store(top, std::memory_order_relaxed); }
  void insert_free(uint64_t off);
  void remove_free(uint64_t off);
  uint64_t find_fit(uint64_t size) const;
  /// Splits block `off` (used, size >= want) so that it is `want` bytes, freeing the rest.
  void trim(uint64_t off, uint64_t want);
  void reset_lists();

  uint8_t* base_;
  AllocatorState* st_;
};

template <typename Keep>
uint64_t Allocator::rebuild(Keep keep) {
  reset_lists();
  uint64_t freed = 0;
  uint64_t prev = 0;
  uint64_t off = st_->heap_begin;
  // The walk stops at top; a torn tail (size that overruns top) is cut at the last good block.
  while (off < top()) {
    BlockHeader* b = block(off);
    if (b->magic != kBlockMagic || b->size < kMinBlock || b->size % kAlign != 0 ||
        off + b->size > top()) {
      set_top(off);  // give the torn tail back to the wilderness
      break;
    }
    b->prev_phys = prev;
    if (!b->free && !keep(b->tag_hi, b->tag_lo, off + kAlign)) {
      b->free = 1;
      ++freed;
    }
    if (b->free && prev != 0 && block(prev)->free) {
      block(prev)->size += b->size;  // coalesce into the previous free block
    } else {
      prev = off;
    }
    off += b->size;
  }
  st_->last_block = prev;
  // Second pass: counters and free lists (prev links of blocks after a merge are fixed here).
  prev = 0;
  for (off = st_->heap_begin; off < top(); off += block(off)->size) {
    BlockHeader* b = block(off);
    b->prev_phys = prev;
    if (b->free) {
      insert_free(off);
    } else {
      st_->used_bytes += b->size;
      ++st_->used_blocks;
    }
    prev = off;
  }
  return freed;
}

}  // namespace ember
