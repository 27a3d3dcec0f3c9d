// Spiller: moves sealed objects out of the store's memory into files of the session's spill
// directory when memory is short, brings them back when they are read, and punches their
// bytes out of the files when they leave.
//
// Protocol (every process of the node spills and restores; the driver also runs a thread)
//   spill_batch(bytes)                                  restore(id)
//   1. locked: scan the table once; pick the least      1. locked: SPILLED -> allocate;
//      recently pinned SEALED objects nobody pins,          CREATED + kEntryRestoring,
//      without nested refs, until `bytes`; pin each         owner = me, pins = 1 (mine)
//      (+1, the spiller's) and flag kEntrySpilling      2. unlocked: read header + bytes,
//   2. unlocked: write each at a 4 KiB-aligned offset       check magic, id, size, checksum
//      of one new file spill-<n>, behind a SpillHeader  3. locked: SEALED (or SPILLED again
//      with its checksum; stop early for an object         with no payload: lost); queue its
//      nobody wants any more (still_wanted)                 bytes to punch; wake waiters
//   3. locked: each written object that only the
//      spiller pins and someone still holds: free its   punch (release(), locked, then
//      block, SPILLED at spilled_at = (file, offset).   punch_file(), unlocked): queue the
//      Others: unpin; queue their bytes to punch;       object's span in SpillControl (or
//      free them if their last ref went meanwhile.      in this process's list when full);
//                                                       the driver's spiller thread punches
//   make_room(size): spill batches until `size` fits;   it; whoever punches a file's last
//   waits while memory is on its way back (a batch      block deletes the file.
//   in flight, or a block the idle trim holds).
//
// Invariants
//   S1  Table, allocator and SpillControl are read and written only under the store lock
//       (Store::Locked); files are opened, written, read and punched only without it (a
//       1 GiB unlink takes ~170 ms here, and every process's store calls would wait).
//   S2  While kEntrySpilling is set the object is SEALED and pinned by the spiller, so its
//       entry stays in its slot and its bytes stay put for the unlocked write: step 2
//       addresses the slot without a lookup (still_wanted), and a second spiller skips it.
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
//
// Crash story
//   - A spiller that dies in step 2 leaves its victims SEALED and flagged kEntrySpilling: its
//     pins are in its ledger, so release_client() gives them back, but the flag stays and
//     they are never spilled again (they stay in memory), and `writing_bytes` keeps their
//     bytes counted as in flight. Its file is removed with the spill directory. Known gap:
//     with those bytes counted, a make_room that finds nothing else to spill keeps waiting
//     for them instead of reporting the store full (the entry does not record which process
//     is its spiller, so release_client cannot take them back).
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
//     full_error(); nothing else, and never a file operation (S1).
//   without the lock: wake_waiters() after a restore someone waits for, Store::not_found(),
//     and its own file I/O.
//
// The background thread (driver only, when a spill directory is set) has its own
// synchronisation (BackgroundThread: mutex, cv, stop flag): it wakes every 100 ms, punches
// what the queue holds and, above `spill_high_water` of capacity, spills down to 5 points
// below it. Nice 19, not SCHED_IDLE: an idle-class thread can stall for seconds mid-batch
// (its objects pinned) when the user's tasks keep every core busy.
#pragma once

#include <cstdint>
#include <string>
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

/// The spilling part of StoreControl (in the segment). Guarded by the store lock (S1), but
/// `dir`, which is written once at creation.
struct SpillControl {
  uint64_t objects;        ///< objects now in spill files
  uint64_t bytes;          ///< their bytes
  uint64_t spills_total;   ///< objects ever spilled
  uint64_t restores_total; ///< objects ever brought back
  uint64_t files;          ///< spill files ever made (the next one's number)
  uint64_t writing_bytes;  ///< bytes of objects being written out right now (step 2)
  /// Spilled bytes to punch out of their files, left by any process for the driver's
  /// spiller thread, so a get that restores does not pay for it (S6).
  uint32_t n_releases;
  uint64_t release_bytes;  ///< their total size, at most kMaxDeferredRelease
  SpillRelease releases[kReleaseQueue];
  char dir[256];           ///< "" disables spilling
};

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
  /// when nothing more can be spilled, kOutOfDisk (or kIOError) when the disk refuses.
  Status make_room(uint64_t size);
  /// Writes the least recently used unpinned objects out, oldest first, until `bytes` are
  /// spilled (or kMaxBatch objects), with one scan of the table. Returns how many were
  /// spilled: 0 when there is nothing to spill or the disk fails (then `*disk_errno` says
  /// why; it is 0 otherwise). Unlocked.
  size_t spill_batch(uint64_t bytes, int* disk_errno = nullptr);
  /// Brings a SPILLED object back into memory (SEALED); the caller then pins it. Unlocked.
  Status restore(const ObjectID& id);

  /// Locked: a SPILLED entry is being freed; forgets it and queues its bytes to punch.
  void forget(const ObjectEntry& e);
  /// Locked: the entry's restorer died mid-read (kEntryRestoring): SPILLED again, readable
  /// from its file. Returns the block to free.
  uint64_t undo_restore(ObjectEntry& e);
  /// Locked: hands over the punches this process must do itself after the lock (S6).
  void take_unqueued(std::vector<SpillRelease>& out) {
    if (!unqueued_.empty()) out.swap(unqueued_);
  }
  /// Punches an object's bytes out of its spill file, deleting the file once it holds
  /// nothing. Unlocked.
  void punch_file(const SpillRelease& r) const;

  static constexpr uint64_t kMinBatch = uint64_t{4} << 20;
  static constexpr size_t kMaxBatch = 1024;

 private:
  /// Locked: queues an object's span for the driver's spiller thread (S6).
  void release(uint64_t packed, uint64_t size);
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
