// Store: the node's shared-memory object store (segment + robust lock + allocator + table).
//
// Invariants:
//  - One node, one store: the driver creates it (create), every other process of the node
//    attaches to the inherited fd (attach). All shared state is in the segment; a Store
//    object is one process's view of it plus per-process helpers (its Spiller and its
//    Residency, with the creator's background threads).
//  - Every read or write of the allocator or the table happens under the segment's robust
//    lock. When a process dies holding it, the next locker rebuilds the allocator from its
//    block walk, frees blocks no table entry claims, recounts the table, and goes on.
//  - Life of an object: [create_pending() -> PENDING (refs 1, no payload: a task's promised
//    return)] -> create_object() -> CREATED (pins +1: the writer) -> seal() -> SEALED ->
//    freed when refs and pins both reach 0. abort() frees a CREATED one. Payload bytes are
//    written only between create_object() and seal().
//  - Waiting: a process that sleeps until an object is sealed sets the entry's `waiters` flag
//    under the lock, then futex-waits on `seal_seq` with the value read under the lock. seal()
//    bumps `seal_seq` and wakes sleepers only when the flag is set, so seals nobody waits for
//    cost no syscall, and no wake-up can be lost (the bump happens after the flag is seen).
//  - An object whose entry has kEntryHasRefs holds one count on each ObjectRef nested in it
//    (listed in its payload, see object_format.h); freeing it releases them.
//  - Spilling (spill.h) and residency (residency.h: the populated-page map, the
//    prefaulter, the idle trim) are the store's components, each in its own files, and
//    friends of Store: they touch the table, the allocator and StoreControl only inside a
//    Store::Locked, call back only what their headers list, and do their slow work (files,
//    page population, punches) without the lock. The life cycle calls them here:
//      create_object  a block that does not fit: Spiller::make_room (unlocked), then retry;
//                     a block that moved top: Residency::note_growth (after the lock)
//      seal           Residency::after_seal (unlocked; one relaxed load when nothing grew)
//      pin            a SPILLED object: Spiller::restore (unlocked), then pin again
//      free_slot      a SPILLED entry: Spiller::forget (locked)
//      release_client a dead restorer's entry: Spiller::undo_restore (locked); a dead
//                     spiller's batches: Spiller::undo_spills (locked)
//      copy_in        Residency::prepare_range (unlocked, per copy slice)
//      ~Locked        Spiller::take_unqueued (locked), punch_file (after the unlock)
//    So create, seal, pin and unpin still take the robust lock once each. Each background
//    thread (the creator's spiller, prefaulter and trimmer) has its own mutex, cv and stop
//    flag (background_thread.h); close() stops and joins them before the fd goes.
//  - A process that set a client id (a worker) records in its ledger every ref and pin it
//    holds itself (`mine`); release_client() gives them all back when it dies, and turns what
//    it was writing back into a promise (PENDING) or frees it: never visible as sealed. What
//    it was spilling stays in memory and can be spilled again (spill.h, S7).
//  - Blocks are claimed in a fixed order so a crash between two steps leaks nothing:
//    allocate (block tagged with the id) then insert the entry; on free, erase the entry
//    then free the block. rebuild() frees any block whose tag has no entry.
//  - Streams: a streaming generator's items are objects with ids stream_item_id(done, k),
//    `done` being its task's one return (which ends up holding the item count, or the task's
//    failure). The stream keeps one promise ahead of its producer: item 0 is PENDING from the
//    submission on, and stream_slot(done, k) makes item k + 1 PENDING before item k is
//    written, so a consumer waiting for item k always waits on an entry (wait() takes a
//    missing one as ready). The items' counts belong to the consumer (no ledger holds them):
//    it takes one for each item it hands out (adopt_ref) and gives the rest back with
//    stream_close, which also erases their promises. A producer whose item is gone (a
//    fulfil_only write fails) knows the consumer let the stream go and stops. A retry names
//    the same items: what an earlier attempt sealed, or the consumer already took, is not
//    PENDING, and only PENDING items are written.
//  - Unhandled failures (Ray's "Unhandled error"): a failure (kEntryError) that is freed
//    before any process pinned it (kEntryRead) is not freed but kept, its last ref moved to
//    StoreControl::unreported, for the driver to read and report (take_unreported); once read
//    it is freed as any object. When that list is full it is freed unreported, and counted.
//    A failure counts as read once pinned, or seen ready by a wait(); failures the program
//    asked for (cancels, kills: the core's messages of those kinds) count as read from the
//    seal on, as Ray reports neither.
//  - After close() every call fails with kClosed (or does nothing, for releases), so
//    ObjectRefs and views that outlive ember.shutdown() are harmless; the mapping goes away
//    when the last holder of the Store (views keep it) is destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "allocator.h"
#include "ledger.h"
#include "object_table.h"
#include "residency.h"
#include "robust_mutex.h"
#include "segment.h"
#include "spill.h"
#include "status.h"

namespace ember {

/// How to size a new store.
struct StoreOptions {
  uint64_t capacity = uint64_t{1} << 30;  ///< heap bytes (object_store_memory)
  uint64_t table_capacity = 0;            ///< object table slots; 0 = derived from capacity
  bool prefault = true;                   ///< run the prefaulter thread (creator only)
  unsigned copy_threads = 0;              ///< threads for large copies; 0 = hardware threads
  uint64_t runtime_bytes = 0;             ///< a zeroed region reserved for the task runtime
  uint32_t ledger_clients = 0;            ///< processes whose holds are tracked (ledger.h)
  uint32_t ledger_capacity = 8192;        ///< objects each of them may hold, tracked
  std::string spill_dir;                  ///< where objects go when memory is full; "": never
  double spill_high_water = 0.8;          ///< above this share of capacity, spill in the background (>= 1: only on demand)
  /// Give free pages back after this long without allocations (<= 0: never). Only with a
  /// spill_dir: an allocation waits for a block being trimmed only there (residency.h, R3).
  double idle_trim_s = 10;
};

/// Counters of the whole store, read under the lock.
struct StoreStats {
  uint64_t capacity;       ///< heap bytes
  uint64_t used_bytes;     ///< bytes held by objects (block headers included)
  uint64_t num_objects;    ///< CREATED + SEALED
  uint64_t high_water;     ///< heap bytes ever handed out
  uint64_t largest_free;   ///< the largest object that fits now
  uint64_t table_capacity;
  uint64_t recoveries;     ///< times a dead lock holder was recovered from
  uint64_t spilled_objects;  ///< objects now in spill files
  uint64_t spilled_bytes;    ///< their bytes
  uint64_t spills_total;     ///< objects ever spilled
  uint64_t restores_total;   ///< objects ever brought back
};

/// How many unhandled failures StoreControl holds for the driver at once.
inline constexpr uint32_t kMaxUnreported = 64;

/// The shared control block of the store (in the segment, after the header page).
struct StoreControl {
  RobustMutex lock;                ///< guards alloc, table and everything marked so
  std::atomic<uint64_t> next_seq;  ///< the next ObjectID sequence number
  std::atomic<uint32_t> seal_seq;  ///< bumped by seals someone waits for (a futex word)
  /// 1 while the node's processes wait for a CPU (the scheduler measures it): then nobody
  /// spins before sleeping, so spinning never takes a CPU that user code needs.
  std::atomic<uint32_t> cpus_contended;
  uint64_t recoveries;             ///< guarded by lock
  uint64_t error_seals;            ///< guarded by lock: failures (kEntryError) ever sealed
  AllocatorState alloc;            ///< guarded by lock
  TableState table;                ///< guarded by lock
  uint64_t access_clock;           ///< guarded by lock: ticks on every pin (LRU order)
  uint64_t allocations;            ///< guarded by lock: objects ever allocated (idle trim's clock)
  uint64_t trimming_bytes;         ///< guarded by lock: free blocks the idle trim holds right now
  SpillControl spill;              ///< guarded by lock (spill.h)
  /// Failures freed unread, each holding one ref, for the driver to report (see the
  /// invariants). Guarded by lock; `unreported_seq`, a futex word, is bumped by each addition.
  std::atomic<uint32_t> unreported_seq;
  uint32_t unreported_count;
  uint64_t unreported_dropped;  ///< guarded by lock: failures freed unreported (list full)
  ObjectID unreported[kMaxUnreported];
};

/// For a wait that ends early when one of its objects is a failure (get() of a list raises the
/// first failure it finds, as Ray does, instead of waiting for the rest). Keep it across the
/// calls of one get(): the ids are scanned again only after a new failure was sealed.
struct WaitErrors {
  uint64_t seen = UINT64_MAX;  ///< StoreControl::error_seals at the last scan
  bool found = false;          ///< set when the wait ended because a failure is ready
};

/// A pinned, sealed object: its payload bytes.
struct ObjectView {
  const uint8_t* data;
  uint64_t size;
};

class Store : public std::enable_shared_from_this<Store> {
 public:
  static Result<std::shared_ptr<Store>> create(const StoreOptions& options);
  static Result<std::shared_ptr<Store>> attach(int fd);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  /// A fresh node-unique id (lock-free); `count` > 1 reserves that many consecutive ids.
  ObjectID new_id(uint32_t count = 1);

  /// Promises `count` objects with consecutive ids from `first` (PENDING, one ref each).
  Status create_pending(const ObjectID& first, uint32_t count);
  /// A task's submission in one lock hold: promises its `count` returns (as create_pending)
  /// and takes one ref on `hold` (its function object) that belongs to the task, not to this
  /// process. All or nothing: when the returns cannot all be made, or `hold` is not in the
  /// store (kNotFound), nothing is left behind.
  /// With `stream`, also promises the stream's item 0 (see "Streams" above).
  Status create_task_returns(const ObjectID& first_return, uint32_t count, const ObjectID& hold,
                             bool stream = false);
  /// What a stream's producer finds at item `index` before writing it.
  enum class StreamSlot : uint8_t {
    kWrite,     ///< PENDING: write it (item index + 1 is now promised too)
    kProduced,  ///< written by an earlier attempt, and not yet taken by the consumer
    kMissing,   ///< not in the store: taken and dropped by the consumer, or let go by it
  };
  /// For the producer of the stream of `done`, before it writes item `index` (kTableFull
  /// when the next promise does not fit).
  Result<StreamSlot> stream_slot(const ObjectID& done, uint64_t index);
  /// For the consumer: gives back its count on every item from `from` on that is still in
  /// the store (promises are erased; what is being written is freed at its seal).
  void stream_close(const ObjectID& done, uint64_t from);
  /// Records in this process's ledger a count it was handed (a stream's item it takes).
  void adopt_ref(const ObjectID& id);
  /// Allocates `size` bytes for `id` and returns the payload to fill in. A PENDING `id` is
  /// fulfilled (its refs kept); otherwise a new entry with one ref is made, or, with
  /// `fulfil_only`, nothing (kNotFound). `has_refs` says
  /// the payload lists nested refs (object_format.h). kStoreFull / kTableFull with the sizes.
  Result<uint8_t*> create_object(const ObjectID& id, uint64_t size, bool has_refs = false,
                                 bool mine = true, bool fulfil_only = false);
  /// Publishes a CREATED object: it becomes SEALED and immutable; drops the writer's pin.
  Status seal(const ObjectID& id);
  /// Frees a CREATED object whose writing failed.
  void abort(const ObjectID& id);

  /// Pins a SEALED object (restoring it if spilled) and returns its bytes; kNotFound when
  /// absent, kNotReady when not sealed yet.
  Result<ObjectView> pin(const ObjectID& id);
  void unpin(const ObjectID& id);
  /// `mine`: the count belongs to this process (its ledger records it); otherwise it is held
  /// for something else (a task's arguments, a container's nested refs).
  Status add_ref(const ObjectID& id, bool mine = true);
  void release_ref(const ObjectID& id, bool mine = true);

  /// Makes this process client `client` (1..ledger_clients-1) whose holds are recorded.
  void set_client(uint32_t client) { client_ = client; }
  /// Releases everything client `client` (process `pid`) held; it died. Also undoes what it
  /// was restoring or spilling (spill.h). Returns the number of objects it held or was
  /// writing.
  uint64_t release_client(uint32_t client, int32_t pid);
  /// True if the object exists and is sealed (in memory or spilled).
  bool is_sealed(const ObjectID& id);
  /// Removes from `ids` (in one lock hold, keeping the order of the rest) those that
  /// is_sealed() would say are sealed; returns how many remain.
  size_t drop_sealed(std::vector<ObjectID>& ids);
  /// True if the object exists in any state (promised, being written or sealed).
  bool contains(const ObjectID& id);
  /// Waits until at least `num_ready` of `ids` are sealed (or gone: a missing object counts
  /// as ready, its reader gets kNotFound) or `timeout_ns` passes (< 0: forever). Sets
  /// ready[i] for each ready id and returns how many are. Call without the GIL.
  size_t wait(const ObjectID* ids, size_t n, size_t num_ready, int64_t timeout_ns, bool* ready,
              WaitErrors* errors = nullptr);

  /// Unhandled failures (see the invariants): waits up to `timeout_ns` until there are some
  /// (or the store closes), then takes them: the caller owns one ref on each and must read
  /// and release it. `dropped` gets how many were freed unreported since the last call.
  /// Call without the GIL.
  std::vector<ObjectID> take_unreported(int64_t timeout_ns, uint64_t* dropped);

  /// Copies `len` bytes into a payload of this store, with threads and bulk page population
  /// for large copies. The caller does not hold the lock (and should not hold the GIL).
  void copy_in(uint8_t* dst, const uint8_t* src, size_t len);

  /// One object as list_objects() reports it.
  struct ObjectInfo {
    ObjectID id;
    SlotState state;
    uint64_t size;
    int32_t refs;
    int32_t pins;
    int32_t owner_pid;
    std::vector<std::pair<uint32_t, int32_t>> holders;  ///< (client, refs + pins) from ledgers
  };
  /// Every object in the store, with who holds it (the dashboard's object view).
  std::vector<ObjectInfo> list_objects();

  StoreStats stats();
  /// Verifies the allocator's and the table's invariants (tests).
  Status check();
  /// Stops the background threads and closes the fd; later calls fail with kClosed.
  void close();
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  /// Whether waiting processes may spin before they sleep (see StoreControl::cpus_contended).
  bool may_spin() const { return ctl_->cpus_contended.load(std::memory_order_relaxed) == 0; }
  void set_cpus_contended(bool contended) {
    // relaxed: a hint; a late flag costs one spin too many or too few.
    ctl_->cpus_contended.store(contended ? 1 : 0, std::memory_order_relaxed);
  }

  const Segment& segment() const { return *seg_; }
  int fd() const { return seg_->fd(); }
  uint64_t node_tag() const { return seg_->header()->node_tag; }
  /// The runtime region reserved by StoreOptions::runtime_bytes (nullptr when none).
  uint8_t* runtime_region() const {
    const SegmentHeader* h = seg_->header();
    return h->runtime_size == 0 ? nullptr : seg_->base() + h->runtime_offset;
  }

  /// Test hook: takes the lock, leaves the allocator mid-update (a block taken but never
  /// entered in the table) and blocks forever, for a test to kill this process.
  [[noreturn]] void debug_die_holding_lock();

 private:
  // The store's components: what each may call here, under the lock or not, is written in
  // its header (spill.h, residency.h).
  friend class Spiller;
  friend class Residency;

  Store(std::unique_ptr<Segment> seg, unsigned copy_threads);
  class Locked;  // RAII holder of the segment lock that recovers from dead holders
  void recover();
  /// Enters `count` PENDING entries with one ref each from `first`, or none (kStoreFull /
  /// kTableFull). Records nothing in the ledger. Locked.
  Status insert_pending(const ObjectID& first, uint32_t count);
  /// Removes the first `count` entries made by insert_pending. Locked.
  void erase_pending(const ObjectID& first, uint32_t count);
  /// is_sealed(), locked.
  bool sealed(const ObjectID& id);
  /// Frees the object in `slot`; appends the nested refs it held to `released`. An unread
  /// failure is kept for the driver instead (held_unreported). Locked.
  void free_slot(int64_t slot, std::vector<ObjectID>& released);
  /// For free_slot: if `e` is a sealed failure nobody read, keeps it (one ref, listed in
  /// StoreControl::unreported) and returns true. Locked.
  bool held_unreported(ObjectEntry& e);
  /// Releases one ref of each id in `ids` (and of whatever their freeing releases). Locked.
  void release_all(std::vector<ObjectID>& ids);
  /// Wakes sleepers of wait() after a seal they asked for. Unlocked.
  void wake_waiters();
  /// Records in this process's ledger (if any) a change of what it holds. Locked.
  void note(const ObjectID& id, int32_t refs, int32_t pins);
  Ledger ledger(uint32_t client) const;
  /// kStoreFull for an object of `size` bytes, with the store's sizes. Locked.
  Status full_error(uint64_t size, const Status& why);
  /// kNotFound for `id`, saying why it may be gone.
  static Status not_found(const ObjectID& id);

  std::unique_ptr<Segment> seg_;
  StoreControl* ctl_;
  Allocator alloc_;
  ObjectTable table_;
  int32_t pid_;
  uint32_t client_ = 0;  ///< this process's ledger; 0: none (the driver)
  unsigned copy_threads_;
  std::atomic<bool> closed_{false};
  Spiller spill_;
  Residency residency_;
};

/// Holds the segment lock for a scope; the first locker after a dead holder repairs.
class Store::Locked {
 public:
  explicit Locked(Store& s) : s_(s) {
    if (s_.ctl_->lock.lock()) {
      s_.recover();
      s_.ctl_->lock.make_consistent();
    }
  }
  ~Locked() {
    // Spilled bytes freed under the lock that the queue had no room for are punched out (or
    // their file deleted) after it: deleting a 1 GiB file takes ~170 ms here, and every
    // process's store calls would wait (spill.h, S1 and S6).
    std::vector<SpillRelease> unqueued;
    s_.spill_.take_unqueued(unqueued);
    s_.ctl_->lock.unlock();
    for (const SpillRelease& r : unqueued) s_.spill_.punch_file(r);
  }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;

 private:
  Store& s_;
};

}  // namespace ember
