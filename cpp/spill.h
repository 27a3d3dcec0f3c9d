// Spiller: moves sealed objects out of the store's memory into files of the session's spill
// directory when memory is short, brings them back when they are read, and punches their
// bytes out of the files when they leave.
//
// Protocol (every process of the node spills and restores; the driver also runs a thread)
//   spill_batch(bytes)                                  restore(id)
//   1. locked: take a free slot of `batches` (S7;       1. locked: SPILLED -> allocate;
//      none: no batch); scan the table once; pick          CREATED + kEntryRestoring,
//      the least recently pinned SEALED objects            owner = me, pins = 1 (mine)
//      nobody pins, without nested refs, until          2. unlocked: read header + bytes,
//      `bytes`; pin each (+1, the spiller's) and           check magic, id, size, checksum
//      flag it kEntrySpilling with the slot's number    3. locked: SEALED (or SPILLED again
//   2. unlocked: write each at a 4 KiB-aligned offset      with no payload: lost); queue its
//      of one new file spill-<n>, behind a SpillHeader     bytes to punch; wake waiters
//      with its checksum; stop early for an object
//      nobody wants any more (still_wanted)             punch (release(), locked, then
//   3. locked: each written object that only the        punch_file(), unlocked): queue the
//      spiller pins and someone still holds: free its   object's span in SpillControl (or
//      block, SPILLED at spilled_at = (file, offset).   in this process's list when full);
//      Others: unpin; queue their bytes to punch;       the driver's spiller thread punches
//      free them if their last ref went meanwhile.      it; whoever punches a file's last
//      Last, free the slot.                             block deletes the file.
//
//   make_room(size): spill batches until `size` fits; waits while memory is on its way back
//   (a batch in flight, or a block the idle trim holds).
//
// Invariants
//   S1  Table, allocator and SpillControl are read and written only under the store lock
//       (Store::Locked); files are opened, written, read and punched only without it (a
//       1 GiB unlink takes ~170 ms here, and every process's store calls would wait).
//   S2  While kEntrySpilling is set the object is SEALED and pinned by the spiller (by a
//       dead one too, until release_client gives the pin back and clears the flag in one
//       lock hold, S7), so its entry stays in its slot and its bytes stay put for the
//       unlocked write: step 2 addresses the slot without a lookup (still_wanted), and a
//       second spiller skips it.
//   S3  An object is SPILLED only once its whole span is in the file (step 3 follows every
//       write), and its `spilled_at` is the only record of where it is: the file number and
//       4 KiB page share the 64 bits with the LRU clock of an object in memory.
//   S4  Every byte range of a file is punched exactly once: when its object is restored,
//       freed while SPILLED, or was written for nothing (step 3). File numbers are never
//       reused within a node, so a late punch or unlink can never hit another batch's file.
//   S5  A restore publishes only bytes whose header and checksum match what was written; a
//       file that is gone, short or changed makes the object lost (kNotFound with the
//       path), never a get of wrong data.
//   S6  The queue in the segment is bounded (kReleaseQueue entries, kMaxDeferredRelease
//       bytes), so a spiller thread that falls behind never holds much disk; a process that
//       finds it full punches after its own lock hold (Store::Locked's destructor).
//   S7  Every batch in flight holds one slot of SpillControl::batches, which names its
//       spiller (client, pid), and each of its victims carries the slot's number in its
//       flags (kEntryBatchMask). The slot is taken in step 1 before the first victim is
//       flagged and freed in step 3 after the last is unflagged, so a victim flagged
//       kEntrySpilling always names a taken slot, and a taken slot is a batch whose
//       spiller is alive or not yet released: release_client() of a dead spiller frees its
//       slots and unflags the victims that name them (undo_spills). make_room counts a
//       batch as in flight by its slot. When all kMaxSpillBatches are taken, no batch is
//       started (spill_batch returns 0) and make_room waits for one to end, as it waits for
//       any batch in flight.
//
// Crash story
//   - A spiller that dies in step 2 leaves its victims SEALED, pinned and flagged
//     kEntrySpilling, and its batch's slot taken: until it is released, make_room counts the
//     batch as in flight (and waits for it when nothing else can be spilled). Its release
//     (release_client(client, pid): the scheduler's, when it reaps the worker) gives the
//     pins back through its ledger and, in the same lock hold, undoes the batch (S7): the
//     slot is freed and the flag cleared on the victims that name it. They are still in
//     memory, intact (step 3 never ran), and a later batch may spill them; a make_room that
//     finds nothing else to spill reports the store full. A death under the lock in step 1
//     or 3 leaves part of that (the slot is taken before the first victim is flagged and
//     freed after the last is unflagged), undone the same way after the lock's recovery.
//     Its file, partly written, is removed with the spill directory. Only a process that
//     is never released keeps its slot: the driver, whose death ends the node.
//   - A restorer that dies in step 2 leaves a CREATED entry with kEntryRestoring owned by
//     its pid; release_client() frees the block and makes it SPILLED again (undo_restore),
//     readable from the same, intact file.
//   - A process that dies with punches in its own list leaks those file bytes until the
//     spill directory is removed (shutdown, or the forkserver when the driver dies).
//
// What it uses of the Store (a friend; spill.cc)
//   under Store::Locked: table_ (find, at, for_each_live), alloc_ (allocate, free,
//     largest_free, stats), ctl_ (spill, access_clock, trimming_bytes), note() for the
//     spiller's pin, free_slot() / release_all() for objects whose last ref went meanwhile,
//     full_error(), pid_ and client_ (who this process is: a restore's owner, the spiller
//     a batch slot names); nothing else, and never a file operation (S1).
//   without the lock: wake_waiters() after a restore someone waits for, Store::not_found(),
//     and its own file I/O.
//
// The background thread (driver only, when a spill directory is set) has its own
// synchronisation (BackgroundThread: mutex, cv, stop flag): it wakes every 100 ms, punches
// what the queue holds and, above `spill_high_water` of capacity, spills down to 5 points
// below it. Nice 19, not SCHED_IDLE: an idle-class thread can stall for seconds mid-batch
// (its objects pinned) when the user's tasks keep every core busy.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "background_thread.h"
#include "object_table.h"
#include "status.h"

namespace ember {

class Store;

/// Bytes of a spill file to punch out: an object left it (restored or freed).
struct SpillRelease {
  uint64_t packed;  ///< where: ObjectEntry::spilled_at
  uint64_t size;    ///< the object's size (its span in the file follows from it)
};
inline constexpr uint32_t kReleaseQueue = 512;
inline constexpr uint64_t kMaxDeferredRelease = uint64_t{1} << 30;

/// The spiller of one batch in flight (S7).
///
/// Why a table of slots, with the slot's number in each victim's flags: an entry has no room
/// for a pid (its 64 bytes are full) but spare bits in its flags, enough for a slot number;
/// a list of victims per batch would take up to kMaxBatch entries each, and one slot per
/// client (sized by the ledger) would not do, as the threads of a process may each run a
/// batch. The slots replace a count of bytes in flight, which was only ever compared with 0
/// ("is a batch in flight?"): a slot says the same, and cannot disagree with a second record
/// after a death under the lock.
struct SpillBatch {
  int32_t pid;      ///< the spilling process; 0: the slot is free (written last when taken)
  uint32_t client;  ///< its ledger (Store::set_client; 0: none), matched with pid
};
/// At most this many batches are in flight on the node (S7). They all write to the disk of
/// the one spill directory, so more at once would not go faster. With all taken no batch
/// starts: make_room waits for one to end, the background thread tries again 100 ms later.
/// The set of a process's slots fits a uint64_t (undo_spills).
inline constexpr uint32_t kMaxSpillBatches = 64;
static_assert(kMaxSpillBatches <= 64 &&
                  kMaxSpillBatches - 1 <= (kEntryBatchMask >> kEntryBatchShift),
              "a slot's number must fit kEntryBatchMask, and the slots a uint64_t");

/// The spilling part of StoreControl (in the segment). Guarded by the store lock (S1), but
/// `dir`, which is written once at creation.
struct SpillControl {
  uint64_t objects;        ///< objects now in spill files
  uint64_t bytes;          ///< their bytes
  uint64_t spills_total;   ///< objects ever spilled
  uint64_t restores_total; ///< objects ever brought back
  uint64_t files;          ///< spill files ever made (the next one's number)
  SpillBatch batches[kMaxSpillBatches];  ///< the batches in flight, by slot (S7)
  /// Spilled bytes to punch out of their files, left by any process for the driver's
  /// spiller thread, so a get that restores does not pay for it (S6).
  uint32_t n_releases;
  uint64_t release_bytes;  ///< their total size, at most kMaxDeferredRelease
  SpillRelease releases[kReleaseQueue];
  char dir[256];           ///< "" disables spilling
};
static_assert(std::is_standard_layout_v<SpillControl>, "offsetof below needs standard layout");
static_assert(offsetof(SpillControl, batches) == 40 &&
                  offsetof(SpillControl, releases) == 568 && sizeof(SpillControl) == 9016,
              "the segment layout changed: bump kSegmentVersion (segment.h)");

/// One process's spilling: a part of its Store (which owns it and outlives it).
class Spiller {
 public:
  explicit Spiller(Store& store) : s_(store) {}
  Spiller(const Spiller&) = delete;
  Spiller& operator=(const Spiller&) = delete;

  /// Starts the background spiller thread (the store's creator, when enabled()).
  void start(double high_water);
  /// Stops and joins it (promptly: at most one batch). Idempotent.
  void stop() { thread_.stop(); }

  /// True when the store has a spill directory.
  bool enabled() const;
  /// Spills least-recently used objects until `size` bytes could fit. Unlocked. kStoreFull
  /// when nothing more can be spilled and no batch is in flight, kOutOfDisk (or kIOError)
  /// when the disk refuses.
  Status make_room(uint64_t size);
  /// Writes the least recently used unpinned objects out, oldest first, until `bytes` are
  /// spilled (or kMaxBatch objects), with one scan of the table. Returns how many were
  /// spilled: 0 when there is nothing to spill, every batch slot is taken (S7), or the disk
  /// fails (then `*disk_errno` says why; it is 0 otherwise). Unlocked.
  size_t spill_batch(uint64_t bytes, int* disk_errno = nullptr);
  /// Brings a SPILLED object back into memory (SEALED); the caller then pins it. Unlocked.
  Status restore(const ObjectID& id);

  /// Locked: a SPILLED entry is being freed; forgets it and queues its bytes to punch.
  void forget(const ObjectEntry& e);
  /// Locked: the entry's restorer died mid-read (kEntryRestoring): SPILLED again, readable
  /// from its file. Returns the block to free.
  uint64_t undo_restore(ObjectEntry& e);
  /// Locked: process `pid` (ledger `client`) died; frees the slots of its batches in flight
  /// and clears kEntrySpilling on their victims, which are still SEALED in memory and may be
  /// spilled again (S7). Their spiller pins come back through its ledger, not here. Returns
  /// how many victims it cleared.
  size_t undo_spills(uint32_t client, int32_t pid);
  /// Locked: hands over the punches this process must do itself after the lock (S6).
  void take_unqueued(std::vector<SpillRelease>& out) {
    if (!unqueued_.empty()) out.swap(unqueued_);
  }
  /// Punches an object's bytes out of its spill file, deleting the file once it holds
  /// nothing. Unlocked.
  void punch_file(const SpillRelease& r) const;

  static constexpr uint64_t kMinBatch = uint64_t{4} << 20;
  static constexpr size_t kMaxBatch = 1024;

  /// Test hook: when set, called in step 2 of each batch this process spills, without the
  /// lock, once its victims are flagged and its file is open, before anything is written:
  /// where a test parks a spiller to kill it. Never set outside tests. (relaxed: set before
  /// the batch it is for starts, by the thread that runs it or before that thread exists.)
  inline static std::atomic<void (*)()> debug_step2_hook{nullptr};

 private:
  /// Locked: queues an object's span for the driver's spiller thread (S6).
  void release(uint64_t packed, uint64_t size);
  /// Locked: takes a free slot of SpillControl::batches for this process's batch (S7), or -1
  /// when all are taken.
  int take_batch_slot();
  /// Locked: true if memory is on its way back: a batch in flight (a slot taken, S7), or
  /// free blocks the idle trim holds out of the free lists while it punches their pages.
  bool memory_in_flight() const;
  /// Writes one victim of a batch; false if the write failed or the object stopped being
  /// worth spilling (freed, or pinned by a reader) before it was all written. Unlocked.
  bool write_unless_unwanted(int fd, int64_t slot, const uint8_t* data, uint64_t size,
                             uint64_t offset);
  /// True if a victim being spilled still has refs and only the spiller's pin. Takes the
  /// lock.
  bool still_wanted(int64_t slot);
  std::string path(uint64_t file) const;
  SpillControl& ctl() const;  ///< the store's, in the segment
  /// Reads object `id` of `size` bytes from its place in a spill file into `dst` and checks
  /// its header and checksum. Returns "" if intact, else what is wrong (for the error).
  static std::string read_back(const std::string& path, uint64_t offset, const ObjectID& id,
                               uint8_t* dst, uint64_t size);
  /// The background thread's loop.
  void run(BackgroundThread& t, double high_water);

  Store& s_;
  /// Guarded by the store lock: punched by this process after its lock hold (S6).
  std::vector<SpillRelease> unqueued_;
  BackgroundThread thread_;  ///< driver only
};

}  // namespace ember
