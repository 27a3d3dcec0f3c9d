// Residency: which pages of the store's heap are backed by memory. Fresh shared memory costs
// a page fault per 4 KiB on first touch (~0.7-1 GB/s per core here, against ~12.8 GB/s for
// warm memory), so pages are populated in bulk before large copies and ahead of the
// high-water mark (the prefaulter); memory nobody uses goes back to the kernel after the
// node has been idle for a while (the idle trim).
//
// Protocol
//   copy_in (any process, no lock)     prefaulter (driver thread)    trimmer (driver thread)
//   prepare_range(p, len): chunks of   wait for a hint (or stop);    every 100 ms: read the
//   2 MiB not marked in this process's window = 16-256 MiB from the  allocation counter
//   map are populated in one           last growth; populate         (locked); after
//   MADV_POPULATE_WRITE per run, then  [top, top + window) 2 MiB at  idle_trim_s without a
//   marked                             a time, top read unlocked     change: give_back_memory
//
//   create_object (locked): note_growth(size) when the allocation moved top and is >= 1 MiB
//   seal (unlocked): after_seal() turns a noted growth into a hint (notify the prefaulter)
//
//   give_back_memory, each step a short lock hold and the punch without it unless noted:
//   1. free blocks of >= 1 MiB still warm: take_for_trim (locked; out of the free lists,
//      counted in trimming_bytes), punch, return_trimmed (locked; marked cold)
//   2. table pages whose every slot is EMPTY: punched under the lock, 4096 pages per hold
//   3. the wilderness [top, heap end): punched under the lock
//
// Invariants
//   R1  The populated map is one process's hint, never a fact the store relies on: a bit set
//       for a chunk another process punched only costs page faults during a copy, and the
//       driver clears the bits of what it punches itself.
//   R2  Only pages no object uses are punched (they come back zeroed on the next touch): a
//       free block the trimmer holds (used, untagged: no allocation can get it, and a
//       rebuild after a crash frees it), table pages that are all EMPTY and the wilderness,
//       the last two under the lock so no insert or allocation can land there meanwhile.
//   R3  A trimmed block is marked cold unless it merged with a neighbour, and cold blocks are
//       not trimmed again; an allocation may reuse one (its bytes are the writer's to fill).
//       While a block is held, trimming_bytes counts it, so an allocation that needs it
//       waits (make_room, spill.h) instead of failing. That wait exists only with spilling,
//       which is why the trimmer runs only in a store with a spill directory.
//   R4  The prefaulter changes no byte (MADV_POPULATE_WRITE maps pages as a write would,
//       without writing), so racing allocations in [top, top + window) is harmless; it reads
//       AllocatorState::top without the lock (relaxed: a hint, see allocator.h).
//   R5  Hints come only from seal(), outside the lock, and only for this process's
//       allocations of 1 MiB and up that grew the heap: small objects fault in cheaply, and
//       an idle node of small objects should hold no 16 MiB window. A hint waits for the
//       seal so the writer's own page faults do not fight the prefaulter's (measured: 1.7
//       vs 2.7 GB/s cold at 16 MiB).
//
// What it uses of the Store (a friend; residency.cc)
//   under Store::Locked: alloc_ (warm_free_blocks, take_for_trim, return_trimmed, top),
//     table_ (num_pages, trim), ctl_ (allocations, trimming_bytes); the punches of table
//     pages and of the wilderness (R2).
//   without the lock: the segment's base, header and fd; alloc_.top() as a hint (R4); the
//     punches of trimmed blocks and every page population.
//
// Synchronisation: each thread is a BackgroundThread with its own mutex, cv and stop flag.
// The prefaulter's window and request counter are guarded by its mutex and updated by
// notify(); the trimmer is woken only by its 100 ms timeout and by stop. `grown_by_` is a
// relaxed atomic: it is written and read by threads of one process, and an exchange hands a
// growth to exactly one seal; a lost or late hint only costs page faults.
//
// Crash story: both threads live in the driver, whose death ends the node. A worker holds
// only its populated map, which dies with it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "background_thread.h"

namespace ember {

class Store;

/// One process's view of the heap's residency: a part of its Store (which owns it).
class Residency {
 public:
  static constexpr uint64_t kChunk = uint64_t{2} << 20;         ///< populated-map granularity
  static constexpr uint64_t kPrefaultFrom = uint64_t{1} << 20;  ///< allocations this big hint
  static constexpr uint64_t kMinWindow = uint64_t{16} << 20;    ///< prefault at least this far
  static constexpr uint64_t kMaxWindow = uint64_t{256} << 20;   ///< and never further
  static constexpr uint64_t kTrimFrom = uint64_t{1} << 20;      ///< free blocks this big trim

  Residency(Store& store, uint64_t heap_size);
  Residency(const Residency&) = delete;
  Residency& operator=(const Residency&) = delete;

  /// Starts the prefaulter thread (the store's creator).
  void start_prefaulter();
  /// Starts the trimmer thread (the creator): gives memory back after `idle_trim_s` (> 0)
  /// without allocations.
  void start_trimmer(double idle_trim_s);
  /// Stops and joins both threads (promptly: at most one 2 MiB populate or one punch).
  void stop();

  /// An allocation of `size` bytes moved the high-water mark (create_object).
  void note_growth(uint64_t size) {
    // relaxed: see the class comment (a hint handed to the next seal of this process).
    if (size >= kPrefaultFrom) grown_by_.store(size, std::memory_order_relaxed);
  }
  /// After a seal, outside the lock: hints a noted growth to the prefaulter (R5).
  void after_seal() {
    // relaxed, both: see the class comment. The load keeps the common seal free of an RMW.
    if (grown_by_.load(std::memory_order_relaxed) == 0) return;
    if (uint64_t grown = grown_by_.exchange(0, std::memory_order_relaxed)) hint(grown);
  }

  /// Populates the 2 MiB chunks of [p, p + len) not yet marked populated in this process,
  /// and marks them. Unlocked; any thread.
  void prepare_range(uint8_t* p, size_t len);
  /// prepare_range for parallel_copy's callback.
  static void prepare_thunk(void* self, uint8_t* p, size_t len);

  /// Punches out the pages of free blocks, empty table pages and the wilderness (they come
  /// back zeroed, on first touch). Returns the bytes given back. Takes the lock in steps;
  /// stops early when `t` is stopping.
  uint64_t give_back_memory(BackgroundThread* t = nullptr);

 private:
  void hint(uint64_t alloc_size);
  void prefault_loop(BackgroundThread& t);
  void trim_loop(BackgroundThread& t, double idle_trim_s);
  /// Punches the whole pages of [offset, offset + len) of the segment out of the memfd and
  /// unmarks the chunks wholly inside.
  void punch(uint64_t offset, uint64_t len);

  Store& s_;
  const uint64_t n_chunks_;
  std::unique_ptr<std::atomic<uint64_t>[]> populated_;  ///< 1 bit per 2 MiB heap chunk (R1)
  /// Size of this process's last allocation that grew the heap, not yet hinted (R5).
  std::atomic<uint64_t> grown_by_{0};

  BackgroundThread prefaulter_;
  uint64_t window_ = 0;    ///< guarded by prefaulter_'s mutex: bytes to keep populated past top
  uint64_t requests_ = 0;  ///< guarded by prefaulter_'s mutex: bumped on each hint
  BackgroundThread trimmer_;
};

}  // namespace ember
