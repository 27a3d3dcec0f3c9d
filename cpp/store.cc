// Store: object life cycle, lock recovery, and the prefaulter.
#include "store.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <random>
#include <unordered_map>
#include <string>
#include <thread>

#include "checksum.h"
#include "futex.h"
#include "object_format.h"
#include "parallel_copy.h"

namespace ember {

namespace {

constexpr uint64_t kChunk = uint64_t{2} << 20;           // populated-map granularity
constexpr uint64_t kPrefaultFrom = uint64_t{1} << 20;    // allocations this big hint it
constexpr uint64_t kMinWindow = uint64_t{16} << 20;      // prefault at least this far ahead
constexpr uint64_t kMaxWindow = uint64_t{256} << 20;     // and never further than this
constexpr uint64_t kMinTableObjects = 10'000'000;        // objects that can exist at once
constexpr uint64_t kTrimPagesPerLock = 4096;             // table pages looked at per lock hold

uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

uint64_t pow2_at_least(uint64_t x) {
  uint64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

uint64_t random_tag() {
  std::random_device rd;
  uint64_t t = (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(getpid());
  return t == 0 ? 1 : t;
}

Status closed_error() { return Status(StatusCode::kClosed, "the object store was shut down"); }
Status not_found(const ObjectID& id) {
  return Status(StatusCode::kNotFound, "object " + id.hex() +
                                           " is not in the store: it was freed when its last "
                                           "reference went, or it never existed on this node");
}

}  // namespace

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
    // Spilled bytes freed under the lock are punched out (or their file deleted) after it:
    // deleting a 1 GiB file takes ~170 ms here, and every process's store calls would wait.
    std::vector<SpillRelease> released;
    released.swap(s_.release_later_);
    s_.ctl_->lock.unlock();
    for (const SpillRelease& r : released) s_.release_spilled(r);
  }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;

 private:
  Store& s_;
};

Result<std::shared_ptr<Store>> Store::create(const StoreOptions& options) {
  if (options.capacity < (uint64_t{1} << 20)) {
    return Status(StatusCode::kInvalid, "object_store_memory must be at least 1 MiB");
  }
  uint64_t heap = round_up(options.capacity, kPageSize);
  // Room for kMinTableObjects at once, or one object per 256 bytes of store if that is more
  // (the smallest object takes a 128-byte block), at the 7/8 fill limit: the store's memory,
  // not the table, is what runs out. The table is virtual until used (object_table.h): 16 Mi
  // slots are 1 GiB of address space and cost 64 bytes per object that exists.
  uint64_t slots = options.table_capacity != 0
                       ? pow2_at_least(options.table_capacity)
                       : pow2_at_least(std::max(kMinTableObjects, heap / 256) / 7 * 8 + 8);
  slots = std::min(slots, kMaxTableCapacity);
  uint64_t store_off = kPageSize;
  uint64_t runtime_off = round_up(store_off + sizeof(StoreControl), kPageSize);
  uint64_t runtime_size = round_up(options.runtime_bytes, kPageSize);
  uint64_t ledger_off = round_up(runtime_off + runtime_size, kPageSize);
  uint64_t ledger_cap = pow2_at_least(options.ledger_capacity);
  uint64_t ledger_size = round_up(uint64_t{options.ledger_clients} * Ledger::bytes(ledger_cap),
                                  kPageSize);
  uint64_t table_off = round_up(ledger_off + ledger_size, kPageSize);
  uint64_t heap_off = round_up(table_off + ObjectTable::bytes(slots), kPageSize);
  auto seg = Segment::create(heap_off + heap);
  if (!seg.ok()) return seg.status();

  Segment& s = **seg;
  SegmentHeader* h = s.header();
  h->version = kSegmentVersion;
  h->creator_pid = getpid();
  h->total_size = s.size();
  h->node_tag = random_tag();
  h->store_offset = store_off;
  h->table_offset = table_off;
  h->table_capacity = slots;
  h->heap_offset = heap_off;
  h->heap_size = heap;
  h->runtime_offset = runtime_size == 0 ? 0 : runtime_off;
  h->runtime_size = runtime_size;
  h->ledger_offset = options.ledger_clients == 0 ? 0 : ledger_off;
  h->ledger_clients = options.ledger_clients;
  h->ledger_capacity = static_cast<uint32_t>(ledger_cap);
  auto* ctl = new (s.base() + store_off) StoreControl();
  ctl->lock.init();
  ctl->next_seq.store(1, std::memory_order_relaxed);
  std::strncpy(ctl->spill_dir, options.spill_dir.c_str(), sizeof(ctl->spill_dir) - 1);
  Allocator::init(&ctl->alloc, heap_off, heap_off + heap);
  ObjectTable::init(&ctl->table, slots);
  // release: an attaching process that reads the magic sees everything written above.
  h->magic.store(kSegmentMagic, std::memory_order_release);

  std::shared_ptr<Store> store(new Store(std::move(*seg), true, options.copy_threads));
  if (options.prefault) store->start_prefaulter();
  if (!options.spill_dir.empty()) {
    Store* raw = store.get();
    double hw = options.spill_high_water;
    double idle = options.idle_trim_s;
    store->spiller_ = std::thread([raw, hw, idle] { raw->spill_loop(hw, idle); });
  }
  return store;
}

Result<std::shared_ptr<Store>> Store::attach(int fd) {
  auto seg = Segment::attach(fd);
  if (!seg.ok()) return seg.status();
  return std::shared_ptr<Store>(new Store(std::move(*seg), false, 0));
}

Store::Store(std::unique_ptr<Segment> seg, bool creator, unsigned copy_threads)
    : seg_(std::move(seg)),
      ctl_(seg_->at<StoreControl>(seg_->header()->store_offset)),
      alloc_(seg_->base(), &ctl_->alloc),
      table_(&ctl_->table, seg_->at<uint8_t>(seg_->header()->table_offset)),
      pid_(static_cast<int32_t>(getpid())),
      copy_threads_(copy_threads != 0 ? copy_threads
                                      : std::max(1u, std::thread::hardware_concurrency())) {
  (void)creator;
  n_chunks_ = (seg_->header()->heap_size + kChunk - 1) / kChunk;
  populated_.reset(new std::atomic<uint64_t>[(n_chunks_ + 63) / 64]());
}

Store::~Store() { close(); }

void Store::close() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  {
    std::lock_guard<std::mutex> g(pf_mu_);
    pf_stop_ = true;
  }
  pf_cv_.notify_all();
  if (prefaulter_.joinable()) prefaulter_.join();
  if (spiller_.joinable()) spiller_.join();
  seg_->close_fd();
}

ObjectID Store::new_id(uint32_t count) {
  // relaxed: uniqueness needs only atomicity; ordering comes from the lock when the id is
  // entered in the table.
  return ObjectID{node_tag(), ctl_->next_seq.fetch_add(count, std::memory_order_relaxed)};
}

Status Store::create_pending(const ObjectID& first, uint32_t count) {
  if (closed()) return closed_error();
  Locked lock(*this);
  Status st = insert_pending(first, count);
  if (!st.ok()) return st;
  for (uint32_t i = 0; i < count; ++i) note(ObjectID{first.hi, first.lo + i}, 1, 0);
  return Status::OK();
}

Status Store::create_task_returns(const ObjectID& first_return, uint32_t count,
                                  const ObjectID& hold) {
  if (closed()) return closed_error();
  Locked lock(*this);
  // The hold is looked up first, so that when it is missing nothing was made. Its slot stays
  // valid across the inserts: linear probing never moves an entry (object_table.h).
  const int64_t slot = table_.find(hold);
  if (slot < 0) return not_found(hold);
  Status st = insert_pending(first_return, count);
  if (!st.ok()) return st;
  ++table_.at(slot).refs;  // the task's: in no ledger, released by whoever ends the task
  for (uint32_t i = 0; i < count; ++i) note(ObjectID{first_return.hi, first_return.lo + i}, 1, 0);
  return Status::OK();
}

Status Store::insert_pending(const ObjectID& first, uint32_t count) {
  for (uint32_t i = 0; i < count; ++i) {
    auto slot = table_.insert(ObjectID{first.hi, first.lo + i}, pid_, 0, 0, SlotState::kPending);
    if (!slot.ok()) {
      erase_pending(first, i);
      return slot.status().code() == StatusCode::kTableFull ? full_error(0, slot.status())
                                                             : slot.status();
    }
    table_.at(*slot).refs = 1;
  }
  return Status::OK();
}

void Store::erase_pending(const ObjectID& first, uint32_t count) {
  std::vector<ObjectID> none;  // a PENDING entry holds no nested refs
  for (uint32_t i = 0; i < count; ++i) free_slot(table_.find({first.hi, first.lo + i}), none);
}

Ledger Store::ledger(uint32_t client) const {
  const SegmentHeader* h = seg_->header();
  return Ledger(seg_->base() + h->ledger_offset + client * Ledger::bytes(h->ledger_capacity),
                h->ledger_capacity);
}

void Store::note(const ObjectID& id, int32_t refs, int32_t pins) {
  if (client_ == 0 || client_ >= seg_->header()->ledger_clients) return;
  ledger(client_).add(id, refs, pins);
}

uint64_t Store::release_client(uint32_t client, int32_t pid) {
  if (closed()) return 0;
  Locked lock(*this);
  uint64_t n = 0;
  std::vector<ObjectID> released;
  if (client != 0 && client < seg_->header()->ledger_clients) {
    ledger(client).drain([&](const ObjectID& id, int32_t refs, int32_t pins) {
      ++n;
      int64_t slot = table_.find(id);
      if (slot < 0) return;
      ObjectEntry& e = table_.at(slot);
      e.pins = std::max(0, e.pins - pins);
      for (int32_t i = 0; i < refs; ++i) released.push_back(id);
      if (refs == 0 && e.pins == 0 && e.refs == 0 && e.state == SlotState::kSealed) {
        free_slot(slot, released);
      }
    });
  }
  release_all(released);  // first: a half-written object may be held only by its writer
  // What it was writing: a promise again if someone holds it (a retry writes it), else freed.
  std::vector<int64_t> to_free;  // freed after the walk: an erase may clean slots behind it
  table_.for_each_live([&](int64_t slot, ObjectEntry& e) {
    if (e.state != SlotState::kCreated || e.owner_pid != pid) return;
    ++n;
    uint64_t payload = e.payload;
    if ((e.flags & kEntryRestoring) != 0) {  // its spill file is intact: spilled again
      e.flags &= ~uint32_t{kEntryRestoring};
      e.state = SlotState::kSpilled;
      e.payload = 0;
      e.pins = 0;
      alloc_.free(payload);
      return;
    }
    e.flags = 0;  // its nested refs were taken only at seal time
    if (e.refs > 0) {
      e.state = SlotState::kPending;
      e.payload = 0;
      e.size = 0;
      e.pins = 0;
      alloc_.free(payload);
    } else {
      to_free.push_back(slot);
    }
  });
  std::vector<ObjectID> none;
  for (int64_t slot : to_free) free_slot(slot, none);
  return n;
}

Status Store::full_error(uint64_t size, const Status& why) {
  AllocatorStats a = alloc_.stats();
  std::string msg = "cannot store an object of " + format_bytes(size) + ": the object store (" +
                    format_bytes(a.capacity) + ") has " + format_bytes(a.used_bytes) +
                    " in use by " + std::to_string(table_.live()) +
                    " objects and its largest free space is " + format_bytes(a.largest_free) +
                    " (" + why.message() +
                    "). Drop ObjectRefs you no longer need, or pass a larger "
                    "object_store_memory to ember.init().";
  return Status(StatusCode::kStoreFull, msg);
}

Result<uint8_t*> Store::create_object(const ObjectID& id, uint64_t size, bool has_refs,
                                     bool mine) {
  if (closed()) return closed_error();
  for (;;) {
    uint64_t payload;
    uint64_t top_before, top_after;
    {
      Locked lock(*this);
      int64_t pending = table_.find(id);
      if (pending >= 0 && table_.at(pending).state != SlotState::kPending) {
        return Status(StatusCode::kAlreadyExists, "object already exists");
      }
      top_before = alloc_.top();
      auto off = alloc_.allocate(size, id.hi, id.lo);
      if (!off.ok()) {
        if (ctl_->spill_dir[0] == 0 || size > alloc_.stats().capacity) {
          return full_error(size, off.status());
        }
        payload = 0;  // spill below, without the lock, then try again
      } else {
        payload = *off;
        ObjectEntry* e;
        if (pending >= 0) {
          e = &table_.at(pending);
          e->payload = payload;  // the block's tag now has an entry claiming it
          e->size = size;
          e->owner_pid = pid_;   // the writer: if it dies mid-write, the promise is restored
          e->state = SlotState::kCreated;
        } else {
          auto slot = table_.insert(id, pid_, payload, size);
          if (!slot.ok()) {
            alloc_.free(payload);
            if (slot.status().code() == StatusCode::kTableFull) {
              return full_error(size, slot.status());
            }
            return slot.status();
          }
          e = &table_.at(*slot);
          e->refs = 1;
          if (mine) note(id, 1, 0);
        }
        e->pins = 1;
        e->flags = has_refs ? uint32_t{kEntryHasRefs} : 0u;
        ++ctl_->allocations;
        top_after = alloc_.top();
      }
    }
    if (payload == 0) {
      Status room = make_room(size);
      if (room.code() == StatusCode::kStoreFull) {
        Locked lock(*this);
        return full_error(size, room);
      }
      if (!room.ok()) {  // the disk is full (OutOfDiskError) or failing
        return Status(room.code(), "cannot store an object of " + format_bytes(size) + ": " +
                                       room.message());
      }
      continue;
    }
    // Only objects big enough for their page faults to matter wake the prefaulter: a node
    // that stores small objects keeps no 16 MiB window of populated pages (idle PSS).
    if (top_after != top_before && size >= kPrefaultFrom) {
      grown_by_.store(size, std::memory_order_relaxed);
    }
    return seg_->base() + payload;
  }
}

Status Store::seal(const ObjectID& id) {
  if (closed()) return closed_error();
  bool wake = false;
  {
    Locked lock(*this);
    int64_t slot = table_.find(id);
    if (slot < 0 || table_.at(slot).state != SlotState::kCreated) {
      return Status(StatusCode::kInvalid, "seal of an object that is not being created");
    }
    ObjectEntry& e = table_.at(slot);
    e.state = SlotState::kSealed;
    e.last_access = ++ctl_->access_clock;
    wake = e.waiters != 0;
    e.waiters = 0;
    const ObjectHeader h = e.size >= sizeof(ObjectHeader) ? read_header(seg_->base() + e.payload)
                                                           : ObjectHeader{};
    if (h.magic == kObjectMagic && (h.flags & kFlagError) != 0) {
      // A failure: get()s of lists that hold it must raise now, though they sleep on another
      // object (the first one not ready): wake every sleeper to look.
      e.flags |= kEntryError;
      ++ctl_->error_seals;
      wake = true;
    }
    if (--e.pins == 0 && e.refs == 0) {
      std::vector<ObjectID> released;
      free_slot(slot, released);
      release_all(released);
    }
  }
  if (wake) wake_waiters();
  if (uint64_t grown = grown_by_.exchange(0, std::memory_order_relaxed)) hint_prefault(grown);
  return Status::OK();
}

void Store::wake_waiters() {
  // release: a woken waiter re-reads the table under the lock anyway; the bump only has to
  // change the futex word after the seal is visible.
  ctl_->seal_seq.fetch_add(1, std::memory_order_release);
  futex_wake(&ctl_->seal_seq, INT32_MAX);
}

size_t Store::wait(const ObjectID* ids, size_t n, size_t num_ready, int64_t timeout_ns,
                   bool* ready, WaitErrors* errors) {
  const auto start = std::chrono::steady_clock::now();
  // Waiting for all of them (get of a list) goes through them in order, flagging only the
  // first one not ready: results mostly come in order, so each seal wakes us at most once
  // and each id is looked up O(1) times. Waiting for some flags them all and rescans.
  const bool all = num_ready >= n;
  size_t cursor = 0;  // with `all`: every id before it is ready
  auto readable = [&](size_t i) {
    int64_t slot = table_.find(ids[i]);
    return slot < 0 || table_.at(slot).state == SlotState::kSealed ||
           table_.at(slot).state == SlotState::kSpilled;  // readable: pin() restores it
  };
  auto mark_all = [&] {  // locked: sets ready[] for every readable id, returns how many
    size_t count = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!ready[i] && readable(i)) ready[i] = true;
      count += ready[i] ? 1 : 0;
    }
    return count;
  };
  for (;;) {
    size_t count = 0;
    uint32_t seq;
    {
      Locked lock(*this);
      // relaxed: read under the lock, after which any seal we must see bumps it again.
      seq = ctl_->seal_seq.load(std::memory_order_relaxed);
      if (all) {
        while (cursor < n && (ready[cursor] || readable(cursor))) ready[cursor++] = true;
        count = cursor;
        if (errors != nullptr && cursor < n && errors->seen != ctl_->error_seals) {
          errors->seen = ctl_->error_seals;
          for (size_t i = 0; i < n && !errors->found; ++i) {  // before the cursor too
            int64_t slot = table_.find(ids[i]);
            errors->found = slot >= 0 && (table_.at(slot).flags & kEntryError) != 0 &&
                            readable(i);
          }
          if (errors->found) {
            count = mark_all();
            return count;
          }
        }
        if (cursor < n) table_.at(table_.find(ids[cursor])).waiters = 1;
      } else {
        count = mark_all();
        if (count < num_ready) {
          for (size_t i = 0; i < n; ++i) {
            if (!ready[i]) table_.at(table_.find(ids[i])).waiters = 1;
          }
        }
      }
    }
    int64_t left = -1;
    if (timeout_ns >= 0) {
      left = timeout_ns - std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count();
    }
    if (count >= num_ready || closed() || (timeout_ns >= 0 && left <= 0)) {
      if (all && count < n) {  // report every ready one, not just those before the cursor
        Locked lock(*this);
        count = mark_all();
      }
      return count;
    }
    // Spin briefly first: a small task's result usually arrives within tens of microseconds,
    // sooner than a futex wake-up would. The flag set above makes the sealer bump seal_seq.
    const auto spin_until =
        std::chrono::steady_clock::now() + std::chrono::microseconds(may_spin() ? 30 : 0);
    while (ctl_->seal_seq.load(std::memory_order_acquire) == seq &&
           std::chrono::steady_clock::now() < spin_until) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    if (ctl_->seal_seq.load(std::memory_order_acquire) != seq) continue;
    // Sleep at most 100 ms at a time so a closed store or a dead peer is noticed.
    futex_wait(&ctl_->seal_seq, seq, left < 0 ? 100'000'000 : std::min<int64_t>(left, 100'000'000));
  }
}

void Store::abort(const ObjectID& id) {
  if (closed()) return;
  Locked lock(*this);
  int64_t slot = table_.find(id);
  if (slot >= 0 && table_.at(slot).state == SlotState::kCreated) {
    table_.at(slot).flags = 0;  // its nested refs were never taken
    std::vector<ObjectID> none;
    free_slot(slot, none);
  }
}

void Store::free_slot(int64_t slot, std::vector<ObjectID>& released) {
  ObjectEntry& e = table_.at(slot);
  uint64_t payload = e.payload;
  if (e.state == SlotState::kSpilled) {
    defer_release(e.spilled_at, e.size);
    --ctl_->spilled_objects;
    ctl_->spilled_bytes -= e.size;
  }
  if ((e.flags & kEntryHasRefs) != 0 && e.state == SlotState::kSealed) {
    const uint8_t* p = seg_->base() + payload;
    ObjectHeader h = read_header(p);
    for (uint32_t i = 0; i < h.nrefs; ++i) released.push_back(nested_ref(p, i));
  }
  table_.erase(slot);  // entry first, block second: see the invariants
  if (payload != 0) alloc_.free(payload);
}

void Store::release_all(std::vector<ObjectID>& ids) {
  // A worklist rather than recursion: freeing a container can free what it holds, and so on.
  while (!ids.empty()) {
    ObjectID id = ids.back();
    ids.pop_back();
    int64_t slot = table_.find(id);
    if (slot < 0) continue;
    ObjectEntry& e = table_.at(slot);
    if (e.refs > 0 && --e.refs == 0 && e.pins == 0 &&
        (e.state == SlotState::kSealed || e.state == SlotState::kSpilled)) {
      free_slot(slot, ids);
    }
  }
}

Result<ObjectView> Store::pin(const ObjectID& id) {
  if (closed()) return closed_error();
  for (;;) {
    SlotState st;
    {
      Locked lock(*this);
      int64_t slot = table_.find(id);
      if (slot < 0) return not_found(id);
      ObjectEntry& e = table_.at(slot);
      st = e.state;
      if (st == SlotState::kSealed) {
        ++e.pins;
        e.last_access = ++ctl_->access_clock;
        note(id, 0, 1);
        return ObjectView{seg_->base() + e.payload, e.size};
      }
      if (st != SlotState::kSpilled && (e.flags & kEntryRestoring) == 0) {
        return Status(StatusCode::kNotReady, "object not sealed yet");
      }
    }
    if (st == SlotState::kSpilled) {
      Status r = restore(id);
      if (!r.ok()) return r;
    } else {  // another process is bringing it back: wait for its seal
      bool ready = false;
      wait(&id, 1, 1, -1, &ready);
    }
  }
}

void Store::unpin(const ObjectID& id) {
  if (closed()) return;
  Locked lock(*this);
  int64_t slot = table_.find(id);
  if (slot < 0) return;
  ObjectEntry& e = table_.at(slot);
  // Only readers unpin, and readers only pin sealed objects: the writer's pin is seal()'s.
  if (e.state != SlotState::kSealed || e.pins == 0) return;
  note(id, 0, -1);
  if (--e.pins == 0 && e.refs == 0) {
    std::vector<ObjectID> released;
    free_slot(slot, released);
    release_all(released);
  }
}

Status Store::add_ref(const ObjectID& id, bool mine) {
  if (closed()) return closed_error();
  Locked lock(*this);
  int64_t slot = table_.find(id);
  if (slot < 0) return not_found(id);
  ++table_.at(slot).refs;
  if (mine) note(id, 1, 0);
  return Status::OK();
}

void Store::release_ref(const ObjectID& id, bool mine) {
  if (closed()) return;
  Locked lock(*this);
  if (mine && table_.find(id) >= 0) note(id, -1, 0);
  std::vector<ObjectID> ids{id};
  release_all(ids);
}

bool Store::is_sealed(const ObjectID& id) {
  if (closed()) return false;
  Locked lock(*this);
  return sealed(id);
}

size_t Store::drop_sealed(std::vector<ObjectID>& ids) {
  if (closed() || ids.empty()) return ids.size();
  Locked lock(*this);
  ids.erase(std::remove_if(ids.begin(), ids.end(), [this](const ObjectID& id) { return sealed(id); }),
            ids.end());
  return ids.size();
}

bool Store::sealed(const ObjectID& id) {
  int64_t slot = table_.find(id);
  return slot >= 0 && (table_.at(slot).state == SlotState::kSealed ||
                       table_.at(slot).state == SlotState::kSpilled);
}

bool Store::contains(const ObjectID& id) {
  if (closed()) return false;
  Locked lock(*this);
  return table_.find(id) >= 0;
}

void Store::recover() {
  ++ctl_->recoveries;
  alloc_.rebuild([this](uint64_t hi, uint64_t lo, uint64_t payload) {
    int64_t slot = table_.find(ObjectID{hi, lo});
    return slot >= 0 && table_.at(slot).state != SlotState::kPending &&
           table_.at(slot).payload == payload;
  });
  table_.recount();
}

// --- spilling -----------------------------------------------------------------------------
//
// A batch of objects goes into one file (creating a file costs 8-270 us on this VM's ext4,
// more than writing 16 KiB), each object at a 4 KiB-aligned offset behind a 64-byte header
// (its id, size and checksum: a file that changed on disk makes the object lost, never wrong). An object leaving its file
// (restored or freed) punches its pages out; the process that punches the file's last
// allocated block deletes it. File numbers are never reused within a node, so a late delete
// can never hit another batch's file.

namespace {
constexpr uint64_t kFileBlock = 4096;
constexpr int kSpillPageBits = 40;  // 2^40 pages of 4 KiB: 4 PiB per spill file

/// What precedes each object in a spill file: enough to tell, when it is read back, that
/// these bytes are that object and unchanged.
struct SpillHeader {
  uint64_t magic;
  uint64_t id_hi, id_lo;
  uint64_t size;
  uint64_t checksum;  // checksum64 of the object's bytes
  uint64_t reserved[3];
};
static_assert(sizeof(SpillHeader) == 64, "one cache line, so the payload stays 64-aligned");
constexpr uint64_t kSpillMagic = 0x314C4C4950534D45ull;  // "EMSPILL1", little-endian

/// Bytes an object of `size` takes in its spill file: header and payload, in whole blocks.
uint64_t spilled_span(uint64_t size) {
  return (sizeof(SpillHeader) + size + kFileBlock - 1) / kFileBlock * kFileBlock;
}

/// The Status of a spill that the disk refused: OutOfDiskError when it is full.
Status disk_error(const std::string& dir, int err) {
  const bool full = err == ENOSPC || err == EDQUOT;
  return Status(full ? StatusCode::kOutOfDisk : StatusCode::kIOError,
                std::string("the object store is full and spilling to ") + dir + " failed (" +
                    std::strerror(err) + ")" +
                    (full ? ": free space on that disk, or point EMBER_TMPDIR (or "
                            "ember.init(_temp_dir=...)) to a disk with room; dropping ObjectRefs "
                            "you no longer need frees store memory"
                          : ""));
}

uint64_t pack_spill(uint64_t file, uint64_t offset) {
  return (file << kSpillPageBits) | (offset / kFileBlock);
}
uint64_t spill_file(uint64_t packed) { return packed >> kSpillPageBits; }
uint64_t spill_offset(uint64_t packed) {
  return (packed & ((uint64_t{1} << kSpillPageBits) - 1)) * kFileBlock;
}

bool pwrite_all(int fd, const uint8_t* p, uint64_t n, uint64_t off) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, std::min<uint64_t>(n, uint64_t{1} << 30), static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    off += static_cast<uint64_t>(w);
    n -= static_cast<uint64_t>(w);
  }
  return true;
}

bool pread_all(int fd, uint8_t* p, uint64_t n, uint64_t off) {
  while (n > 0) {
    ssize_t r = pread(fd, p, std::min<uint64_t>(n, uint64_t{1} << 30), static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    off += static_cast<uint64_t>(r);
    n -= static_cast<uint64_t>(r);
  }
  return true;
}
}  // namespace

std::string Store::spill_path(uint64_t file) const {
  char name[24];
  std::snprintf(name, sizeof name, "/spill-%06llx", static_cast<unsigned long long>(file));
  return std::string(ctl_->spill_dir) + name;
}

void Store::release_spilled(const SpillRelease& r) {
  const std::string path = spill_path(spill_file(r.packed));
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  const uint64_t len = spilled_span(r.size);
  struct stat st{};
  // Where holes cannot be punched the file stays until the session's spill directory goes.
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(spill_offset(r.packed)), static_cast<off_t>(len)) == 0 &&
      fstat(fd, &st) == 0 && st.st_blocks == 0) {
    unlink(path.c_str());  // its last object is gone (another process may have beaten us)
  }
  ::close(fd);
}

void Store::defer_release(uint64_t packed, uint64_t size) {
  // Bounded in bytes too, so a spiller thread that falls behind never holds much disk.
  if (ctl_->n_releases < kReleaseQueue && ctl_->release_bytes + size <= kMaxDeferredRelease) {
    ctl_->releases[ctl_->n_releases++] = SpillRelease{packed, size};
    ctl_->release_bytes += size;
  } else {
    release_later_.push_back(SpillRelease{packed, size});
  }
}

Status Store::make_room(uint64_t size) {
  for (;;) {
    bool in_flight;
    {
      Locked lock(*this);
      if (alloc_.largest_free() >= size) return Status::OK();
      in_flight = ctl_->trimming_bytes != 0 || ctl_->spilling_bytes != 0;
    }
    // At least kMinSpillBatch at a time, so that a stream of small allocations (or restores)
    // does not pay a scan of the table and a file for each.
    int disk_errno = 0;
    if (spill_batch(std::max(size, kMinSpillBatch), &disk_errno) != 0) continue;
    // A disk that refuses writes will refuse the ones in flight too: say so now.
    if (disk_errno != 0) return disk_error(ctl_->spill_dir, disk_errno);
    if (!in_flight) {
      return Status(StatusCode::kStoreFull, "spilling cannot make room: the rest is pinned or in use");
    }
    // Memory on its way back: free blocks the idle trim holds out of the free lists while it
    // punches their pages, or objects another thread is writing out. Wait for it rather than
    // report the store full.
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

size_t Store::spill_batch(uint64_t bytes, int* disk_errno) {
  struct Victim {
    uint64_t last_access;
    int64_t slot;
    ObjectID id;
    const uint8_t* data;
    uint64_t size;
    uint64_t offset;  // in the batch's file
    bool written;
  };
  std::vector<Victim> victims;
  uint64_t file, batch_bytes = 0;
  {
    Locked lock(*this);
    table_.for_each_live([&](int64_t slot, const ObjectEntry& e) {
      // Objects holding nested refs stay: their list of refs lives in their bytes.
      if (e.state != SlotState::kSealed || e.pins != 0 || e.refs == 0 || e.payload == 0 ||
          (e.flags & (kEntrySpilling | kEntryHasRefs)) != 0) {
        return;
      }
      victims.push_back(Victim{e.last_access, slot, e.id, seg_->base() + e.payload, e.size, 0,
                               false});
    });
    std::sort(victims.begin(), victims.end(),
              [](const Victim& a, const Victim& b) { return a.last_access < b.last_access; });
    uint64_t total = 0, offset = 0;
    size_t n = 0;
    while (n < victims.size() && n < kMaxSpillBatch && total < bytes) {
      victims[n].offset = offset;
      offset += spilled_span(victims[n].size);
      total += victims[n++].size;
    }
    victims.resize(n);
    if (victims.empty()) return 0;
    for (const Victim& v : victims) {
      ObjectEntry& e = table_.at(v.slot);
      ++e.pins;  // the spiller's pin: the bytes stay put while they are written out
      note(e.id, 0, 1);
      e.flags |= kEntrySpilling;
      batch_bytes += v.size;
    }
    file = ctl_->spill_files++;
    ctl_->spilling_bytes += batch_bytes;
  }
  // Written without the lock. A failed write (disk full) keeps that object and the rest of
  // the batch in memory.
  const std::string path = spill_path(file);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  int write_errno = fd < 0 ? errno : 0;
  for (Victim& v : victims) {
    if (fd < 0) break;
    // The bytes are sealed and pinned: the checksum taken now is what gets written.
    SpillHeader h{kSpillMagic, v.id.hi, v.id.lo, v.size, checksum64(v.data, v.size), {}};
    errno = 0;
    v.written = pwrite_all(fd, reinterpret_cast<const uint8_t*>(&h), sizeof h, v.offset) &&
                write_unless_unwanted(fd, v.slot, v.data, v.size, v.offset + sizeof h);
    const int err = errno;  // before still_wanted's lock calls
    if (!v.written && still_wanted(v.slot)) {  // the disk failed (a pwrite of 0 bytes: EIO)
      write_errno = err != 0 ? err : EIO;
      break;
    }
  }
  if (disk_errno != nullptr) *disk_errno = write_errno;
  if (fd >= 0) ::close(fd);
  size_t spilled = 0;
  {
    Locked lock(*this);
    ctl_->spilling_bytes -= batch_bytes;
    std::vector<ObjectID> released;
    for (const Victim& v : victims) {
      int64_t slot = table_.find(v.id);  // still there: our pin keeps it
      ObjectEntry& e = table_.at(slot);
      e.flags &= ~uint32_t{kEntrySpilling};
      note(e.id, 0, -1);
      if (!v.written || e.pins != 1 || e.refs == 0) {
        // Not written, someone started reading it (keep it in memory), or its last ref went
        // while we wrote (free it now: our pin was the last thing holding it).
        --e.pins;
        if (fd >= 0) release_later_.push_back({pack_spill(file, v.offset), v.size});  // now
        if (e.refs == 0 && e.pins == 0) free_slot(slot, released);
        continue;
      }
      alloc_.free(e.payload);
      e.payload = 0;
      e.pins = 0;
      e.state = SlotState::kSpilled;
      e.spilled_at = pack_spill(file, v.offset);
      ++ctl_->spilled_objects;
      ctl_->spilled_bytes += e.size;
      ++ctl_->spills_total;
      ++spilled;
    }
    release_all(released);
  }
  return spilled;
}

bool Store::still_wanted(int64_t slot) {
  Locked lock(*this);
  const ObjectEntry& e = table_.at(slot);  // our pin keeps the entry in this slot
  return e.refs > 0 && e.pins == 1;
}

bool Store::write_unless_unwanted(int fd, int64_t slot, const uint8_t* data, uint64_t size,
                                  uint64_t offset) {
  // In chunks, checking between them that the object is still worth writing: its last ref
  // may go, or a reader may pin it, while a large one is written; memory someone is waiting
  // for comes back sooner if we stop.
  constexpr uint64_t kChunk = uint64_t{64} << 20;
  for (uint64_t done = 0; done < size; done += kChunk) {
    if (done != 0 && !still_wanted(slot)) return false;
    if (!pwrite_all(fd, data + done, std::min(kChunk, size - done), offset + done)) return false;
  }
  return true;
}

Status Store::restore(const ObjectID& id) {
  for (;;) {
    uint8_t* dst;
    uint64_t size, packed;
    {
      Locked lock(*this);
      int64_t slot = table_.find(id);
      if (slot < 0) return not_found(id);
      ObjectEntry& e = table_.at(slot);
      if (e.state != SlotState::kSpilled) return Status::OK();  // someone else restored it
      size = e.size;
      packed = e.spilled_at;
      auto off = alloc_.allocate(e.size, id.hi, id.lo);
      if (off.ok()) {
        e.payload = *off;
        e.state = SlotState::kCreated;
        e.flags |= kEntryRestoring;
        e.owner_pid = pid_;
        e.pins = 1;  // the restorer's, as a writer's
        dst = seg_->base() + *off;
      } else {
        dst = nullptr;
      }
    }
    if (dst == nullptr) {
      Status room = make_room(size);
      if (room.code() == StatusCode::kStoreFull) {
        Locked lock(*this);
        return full_error(size, Status(StatusCode::kStoreFull, "cannot restore a spilled object"));
      }
      if (!room.ok()) {
        return Status(room.code(), "cannot restore object " + id.hex() + " (" +
                                       format_bytes(size) + "): " + room.message());
      }
      continue;
    }
    const std::string path = spill_path(spill_file(packed));
    const std::string why = read_spilled(path, spill_offset(packed), id, dst, size);
    const bool ok = why.empty();
    bool wake;
    {
      Locked lock(*this);
      int64_t slot = table_.find(id);
      ObjectEntry& e = table_.at(slot);
      e.flags &= ~uint32_t{kEntryRestoring};
      e.pins = 0;
      wake = e.waiters != 0;
      e.waiters = 0;
      if (!ok) {
        // The file is gone or unreadable: the object is lost. It stays SPILLED so that every
        // reader (those waiting for this restore are woken) gets the same error, not a hang.
        alloc_.free(e.payload);
        e.payload = 0;
        e.state = SlotState::kSpilled;
      } else {
        e.state = SlotState::kSealed;
        e.last_access = ++ctl_->access_clock;
        defer_release(packed, size);
        --ctl_->spilled_objects;
        ctl_->spilled_bytes -= size;
        ++ctl_->restores_total;
      }
    }
    if (wake) wake_waiters();
    if (!ok) {
      return Status(StatusCode::kNotFound,
                    "object " + id.hex() + " is lost: it was spilled to " + path + ", which " +
                        why + ". Its data cannot be recovered; recreate it (re-run the task or "
                        "put it again)");
    }
    return Status::OK();
  }
}

std::string Store::read_spilled(const std::string& path, uint64_t offset, const ObjectID& id,
                                uint8_t* dst, uint64_t size) {
  errno = 0;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::string("cannot be read back (") + std::strerror(errno) + ")";
  SpillHeader h{};
  bool read = pread_all(fd, reinterpret_cast<uint8_t*>(&h), sizeof h, offset) &&
              pread_all(fd, dst, size, offset + sizeof h);
  const int read_errno = errno;  // 0 if the file was merely short
  ::close(fd);
  if (!read) {
    return std::string("cannot be read back (") +
           (read_errno != 0 ? std::strerror(read_errno) : "the file is too short") + ")";
  }
  if (h.magic != kSpillMagic || h.id_hi != id.hi || h.id_lo != id.lo || h.size != size) {
    return "holds something else where this object was written (the file was changed)";
  }
  if (checksum64(dst, size) != h.checksum) {
    return "is corrupt: the object's bytes read back differ from those written (checksum "
           "mismatch)";
  }
  return "";
}

std::vector<Store::ObjectInfo> Store::list_objects() {
  std::vector<ObjectInfo> out;
  if (closed()) return out;
  Locked lock(*this);
  std::unordered_map<uint64_t, size_t> where;  // id.lo -> index in out
  table_.for_each_live([&](int64_t, const ObjectEntry& e) {
    where[e.id.lo] = out.size();
    out.push_back(ObjectInfo{e.id, e.state, e.size, e.refs, e.pins, e.owner_pid, {}});
  });
  const SegmentHeader* h = seg_->header();
  for (uint32_t c = 1; c < h->ledger_clients; ++c) {
    Ledger l = ledger(c);
    if (l.live() == 0) continue;
    l.for_each([&](const ObjectID& id, int32_t refs, int32_t pins) {
      auto it = where.find(id.lo);
      if (it != where.end() && out[it->second].id == id) {
        out[it->second].holders.emplace_back(c, refs + pins);
      }
    });
  }
  return out;
}

StoreStats Store::stats() {
  if (closed()) return StoreStats{};
  Locked lock(*this);
  AllocatorStats a = alloc_.stats();
  return StoreStats{a.capacity,           a.used_bytes,        table_.live(),
                    a.high_water,         a.largest_free,      table_.capacity(),
                    ctl_->recoveries,     ctl_->spilled_objects, ctl_->spilled_bytes,
                    ctl_->spills_total,   ctl_->restores_total};
}

Status Store::check() {
  if (closed()) return closed_error();
  Locked lock(*this);
  Status st = alloc_.check();
  if (!st.ok()) return st;
  return table_.check();
}

void Store::debug_die_holding_lock() {
  (void)ctl_->lock.lock();
  // A block taken from the heap whose table entry was never written: what a process killed
  // between the two steps of create_object leaves behind.
  (void)alloc_.allocate(size_t{1} << 20, node_tag(), ~uint64_t{0});
  for (;;) pause();
}

// --- large copies and page population -------------------------------------------------

void Store::copy_in(uint8_t* dst, const uint8_t* src, size_t len) {
  parallel_copy(dst, src, len, copy_threads_, &Store::prepare_thunk, this);
}

void Store::prepare_thunk(void* self, uint8_t* p, size_t len) {
  static_cast<Store*>(self)->prepare_range(p, len);
}

void Store::prepare_range(uint8_t* p, size_t len) {
  uint8_t* heap = seg_->base() + seg_->header()->heap_offset;
  if (len == 0 || p < heap) return;
  const uint64_t heap_size = seg_->header()->heap_size;
  uint64_t first = static_cast<uint64_t>(p - heap) / kChunk;
  uint64_t last = std::min(n_chunks_ - 1, static_cast<uint64_t>(p + len - 1 - heap) / kChunk);
  // relaxed: the map is a hint; populating a chunk twice is harmless.
  auto is_marked = [&](uint64_t c) {
    return (populated_[c / 64].load(std::memory_order_relaxed) >> (c % 64)) & 1u;
  };
  // Populate each run of unmarked chunks with one call: the kernel maps a long range much
  // faster than many short ones.
  for (uint64_t c = first; c <= last;) {
    if (is_marked(c)) {
      ++c;
      continue;
    }
    uint64_t run_end = c;
    while (run_end <= last && !is_marked(run_end)) ++run_end;
    uint64_t end = std::min(heap_size, run_end * kChunk);
    populate_write(heap + c * kChunk, end - c * kChunk);
    for (; c < run_end; ++c) {
      populated_[c / 64].fetch_or(uint64_t{1} << (c % 64), std::memory_order_relaxed);
    }
  }
}

void Store::spill_loop(double high_water, double idle_trim_s) {
  // Spilling here, ahead of need, keeps writes to disk off the threads that allocate: they
  // only spill themselves when a burst outruns this loop. Down to 5 points under the mark, so
  // it does not run for every object.
  // Nice 19, not SCHED_IDLE like the prefaulter: when the user's tasks keep every core busy,
  // an idle-class thread can stall for seconds in the middle of a batch (its objects pinned)
  // and leave freed spilled bytes on disk; at nice 19 it still gets a small, steady share.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  const double low_water = high_water - 0.05;
  // Passes of 100 ms without an allocation before the trim (<= 0: never).
  const int idle_passes_to_trim = idle_trim_s > 0 ? std::max(1, static_cast<int>(idle_trim_s * 10)) : -1;
  uint64_t last_allocations = 0, trimmed_at = ~uint64_t{0};
  int idle_passes = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> g(pf_mu_);
      pf_cv_.wait_for(g, std::chrono::milliseconds(100), [&] { return pf_stop_; });
      if (pf_stop_) return;
    }
    uint64_t allocations;
    std::vector<SpillRelease> releases;
    {
      Locked lock(*this);
      allocations = ctl_->allocations;
      releases.assign(ctl_->releases, ctl_->releases + ctl_->n_releases);
      ctl_->n_releases = 0;
      ctl_->release_bytes = 0;
    }
    for (const SpillRelease& r : releases) release_spilled(r);
    idle_passes = allocations == last_allocations ? idle_passes + 1 : 0;
    last_allocations = allocations;
    if (idle_passes_to_trim > 0 && idle_passes >= idle_passes_to_trim && trimmed_at != allocations) {
      give_back_memory();
      trimmed_at = allocations;
    }
    auto over = [&](double mark) {
      Locked lock(*this);
      AllocatorStats a = alloc_.stats();
      return static_cast<double>(a.used_bytes) > mark * static_cast<double>(a.capacity);
    };
    if (high_water <= 0 || high_water >= 1 || !over(high_water)) continue;  // >= 1: never ahead
    while (!closed() && over(low_water)) {
      uint64_t bytes;
      {
        Locked lock(*this);
        AllocatorStats a = alloc_.stats();
        // Down to the low-water mark, in batches of at least 4 MiB (an eighth of a small
        // store): a trickle of small puts would otherwise make a file for every few objects.
        bytes = std::max(
            a.used_bytes - static_cast<uint64_t>(low_water * static_cast<double>(a.capacity)),
            std::min(kMinSpillBatch, a.capacity / 8));
      }
      if (spill_batch(bytes) == 0) break;
    }
  }
}

void Store::punch(uint64_t offset, uint64_t len) {
  uint64_t a = (offset + kPageSize - 1) / kPageSize * kPageSize;  // whole pages inside only
  uint64_t b = (offset + len) / kPageSize * kPageSize;
  if (b <= a || seg_->fd() < 0) return;
  fallocate(seg_->fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(a),
            static_cast<off_t>(b - a));
  // Chunks wholly punched are no longer populated in this process.
  const uint64_t heap = seg_->header()->heap_offset;
  if (b <= heap) return;
  uint64_t first = (std::max(a, heap) - heap + kChunk - 1) / kChunk;
  uint64_t last = (b - heap) / kChunk;  // exclusive
  for (uint64_t c = first; c < last && c < n_chunks_; ++c) {
    populated_[c / 64].fetch_and(~(uint64_t{1} << (c % 64)), std::memory_order_relaxed);
  }
}

uint64_t Store::give_back_memory() {
  uint64_t given = 0;
  std::vector<std::pair<uint64_t, uint64_t>> blocks;
  {
    Locked lock(*this);
    blocks = alloc_.warm_free_blocks(uint64_t{1} << 20);
  }
  for (const auto& [payload, bytes] : blocks) {
    {
      Locked lock(*this);
      if (!alloc_.take_for_trim(payload, bytes)) continue;  // taken or merged meanwhile
      ctl_->trimming_bytes += bytes;
    }
    punch(payload, bytes);
    given += bytes;
    Locked lock(*this);
    alloc_.return_trimmed(payload, bytes);
    ctl_->trimming_bytes -= bytes;
  }
  // Table pages whose objects are all gone (ids move on through the table and never come
  // back to a page before a wrap), a batch per lock hold: an insert landing in a page while
  // it is punched would be lost, and a whole 1 GiB table at once would stall every process.
  const uint8_t* slots0 = reinterpret_cast<const uint8_t*>(&table_.at(0));
  const uint64_t slots_off = static_cast<uint64_t>(slots0 - seg_->base());
  for (uint64_t looked = 0; looked < table_.num_pages(); looked += kTrimPagesPerLock) {
    Locked lock(*this);
    given += kPageSize * table_.trim(kTrimPagesPerLock, [&](uint64_t first, uint64_t n) {
      punch(slots_off + first * sizeof(ObjectEntry), n * sizeof(ObjectEntry));
    });
  }
  // The wilderness: never handed out, but the prefaulter may have populated it.
  Locked lock(*this);
  const SegmentHeader* h = seg_->header();
  uint64_t top = alloc_.top();
  uint64_t end = h->heap_offset + h->heap_size;
  if (end > top) {
    punch(top, end - top);
    given += end - top;
  }
  return given;
}

void Store::start_prefaulter() {
  prefaulter_ = std::thread([this] { prefault_loop(); });
}

void Store::hint_prefault(uint64_t alloc_size) {
  if (!prefaulter_.joinable()) return;
  {
    std::lock_guard<std::mutex> g(pf_mu_);
    uint64_t cap = std::min(kMaxWindow, seg_->header()->heap_size / 8);
    pf_window_ = std::max(pf_window_, std::min(cap, std::max(kMinWindow, 2 * alloc_size)));
    ++pf_requests_;
  }
  pf_cv_.notify_all();  // the spiller waits on it too
}

void Store::prefault_loop() {
  // SCHED_IDLE: the prefaulter only uses a core nobody else wants, so it never slows the
  // copy it is trying to speed up.
  sched_param sp{};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
  uint64_t seen = 0;
  uint8_t* heap = seg_->base() + seg_->header()->heap_offset;
  const uint64_t heap_size = seg_->header()->heap_size;
  for (;;) {
    uint64_t window;
    {
      std::unique_lock<std::mutex> g(pf_mu_);
      pf_cv_.wait(g, [&] { return pf_stop_ || pf_requests_ != seen; });
      if (pf_stop_) return;
      seen = pf_requests_;
      window = pf_window_;
    }
    // Without the lock: top only steers which pages to warm (AllocatorState::top).
    uint64_t top = alloc_.top() - seg_->header()->heap_offset;
    uint64_t end = std::min(heap_size, top + window);
    for (uint64_t at = top; at < end; at += kChunk) {
      {
        std::lock_guard<std::mutex> g(pf_mu_);
        if (pf_stop_) return;
      }
      prepare_range(heap + at, std::min(kChunk, end - at));
    }
  }
}

}  // namespace ember
