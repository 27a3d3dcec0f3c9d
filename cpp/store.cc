// Store: the object life cycle (ids, create/seal/abort, refs and pins, wait, free,
// release_client, stats) and lock recovery. Spilling is in spill.cc, residency in residency.cc.
#include "store.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

#include "futex.h"
#include "object_format.h"
#include "parallel_copy.h"

namespace ember {

namespace {

constexpr uint64_t kMinTableObjects = 10'000'000;  // objects that can exist at once

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

}  // namespace

Status Store::not_found(const ObjectID& id) {
  return Status(StatusCode::kNotFound, "object " + id.hex() +
                                           " is not in the store: it was freed when its last "
                                           "reference went, or it never existed on this node");
}

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
  std::strncpy(ctl->spill.dir, options.spill_dir.c_str(), sizeof(ctl->spill.dir) - 1);
  Allocator::init(&ctl->alloc, heap_off, heap_off + heap);
  ObjectTable::init(&ctl->table, slots);
  // release: an attaching process that reads the magic sees everything written above.
  h->magic.store(kSegmentMagic, std::memory_order_release);

  std::shared_ptr<Store> store(new Store(std::move(*seg), options.copy_threads));
  if (options.prefault) store->residency_.start_prefaulter();
  if (!options.spill_dir.empty()) {
    store->spill_.start(options.spill_high_water);
    // Only with spilling: there an allocation that needs a block being trimmed waits for it
    // (residency.h, R3); without, it would fail.
    if (options.idle_trim_s > 0) store->residency_.start_trimmer(options.idle_trim_s);
  }
  return store;
}

Result<std::shared_ptr<Store>> Store::attach(int fd) {
  auto seg = Segment::attach(fd);
  if (!seg.ok()) return seg.status();
  return std::shared_ptr<Store>(new Store(std::move(*seg), 0));
}

Store::Store(std::unique_ptr<Segment> seg, unsigned copy_threads)
    : seg_(std::move(seg)),
      ctl_(seg_->at<StoreControl>(seg_->header()->store_offset)),
      alloc_(seg_->base(), &ctl_->alloc),
      table_(&ctl_->table, seg_->at<uint8_t>(seg_->header()->table_offset)),
      pid_(static_cast<int32_t>(getpid())),
      copy_threads_(copy_threads != 0 ? copy_threads
                                      : std::max(1u, std::thread::hardware_concurrency())),
      spill_(*this),
      residency_(*this, seg_->header()->heap_size) {}

Store::~Store() { close(); }

void Store::close() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  ctl_->unreported_seq.fetch_add(1, std::memory_order_release);  // take_unreported returns
  futex_wake(&ctl_->unreported_seq, INT32_MAX);
  residency_.stop();  // each thread joins within one step of its work (background_thread.h)
  spill_.stop();
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
                                  const ObjectID& hold, bool stream) {
  if (closed()) return closed_error();
  if (stream && first_return.lo >= kMaxStreamTaskSeq) {
    return Status(StatusCode::kInvalid, "the node has made too many objects for a new stream");
  }
  Locked lock(*this);
  // The hold is looked up first, so that when it is missing nothing was made. Its slot stays
  // valid across the inserts: linear probing never moves an entry (object_table.h).
  const int64_t slot = table_.find(hold);
  if (slot < 0) return not_found(hold);
  Status st = insert_pending(first_return, count);
  if (!st.ok()) return st;
  if (stream) {  // item 0: the consumer's, in no ledger (see "Streams")
    st = insert_pending(stream_item_id(first_return, 0), 1);
    if (!st.ok()) {
      erase_pending(first_return, count);
      return st;
    }
  }
  ++table_.at(slot).refs;  // the task's: in no ledger, released by whoever ends the task
  for (uint32_t i = 0; i < count; ++i) note(ObjectID{first_return.hi, first_return.lo + i}, 1, 0);
  return Status::OK();
}

Result<Store::StreamSlot> Store::stream_slot(const ObjectID& done, uint64_t index) {
  if (closed()) return closed_error();
  if (index + 1 >= kMaxStreamItems) {
    return Status(StatusCode::kInvalid, "a streaming generator yields at most " +
                                            std::to_string(kMaxStreamItems - 1) + " items");
  }
  Locked lock(*this);
  const int64_t slot = table_.find(stream_item_id(done, index));
  if (slot < 0) return StreamSlot::kMissing;
  if (table_.at(slot).state != SlotState::kPending) return StreamSlot::kProduced;
  const ObjectID next = stream_item_id(done, index + 1);
  if (table_.find(next) < 0) {  // present already when a retry resumes where one stopped
    Status st = insert_pending(next, 1);
    if (!st.ok()) return st;
  }
  return StreamSlot::kWrite;
}

void Store::stream_close(const ObjectID& done, uint64_t from) {
  if (closed()) return;
  Locked lock(*this);
  std::vector<ObjectID> released;
  for (uint64_t k = from; k < kMaxStreamItems; ++k) {
    const int64_t slot = table_.find(stream_item_id(done, k));
    if (slot < 0) break;  // items are made in order: none after the first missing one
    ObjectEntry& e = table_.at(slot);
    if (e.state == SlotState::kPending) {
      free_slot(slot, released);  // nobody else holds a promise; its producer now stops
    } else {
      released.push_back(e.id);
    }
  }
  release_all(released);
}

void Store::adopt_ref(const ObjectID& id) {
  if (closed() || client_ == 0) return;
  Locked lock(*this);
  note(id, 1, 0);
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
  // The batches it was spilling (its spiller pins came back above): their victims may be
  // spilled again, and make_room no longer waits for them (spill.h, S7).
  spill_.undo_spills(client, pid);
  // What it was writing: a promise again if someone holds it (a retry writes it), else freed.
  std::vector<int64_t> to_free;  // freed after the walk: an erase may clean slots behind it
  table_.for_each_live([&](int64_t slot, ObjectEntry& e) {
    if (e.state != SlotState::kCreated || e.owner_pid != pid) return;
    ++n;
    if ((e.flags & kEntryRestoring) != 0) {  // its spill file is intact: spilled again
      alloc_.free(spill_.undo_restore(e));
      return;
    }
    uint64_t payload = e.payload;
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
                                     bool mine, bool fulfil_only) {
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
      if (pending < 0 && fulfil_only) return Status(StatusCode::kNotFound, "no promise to fulfil");
      top_before = alloc_.top();
      auto off = alloc_.allocate(size, id.hi, id.lo);
      if (!off.ok()) {
        if (!spill_.enabled() || size > alloc_.stats().capacity) {
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
      Status room = spill_.make_room(size);
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
    // that stores small objects keeps no 16 MiB window of populated pages (residency.h, R5).
    if (top_after != top_before) residency_.note_growth(size);
    return seg_->base() + payload;
  }
}

/// A failure the program asked for (a cancel, a kill, a removed group), which Ray does not
/// report as unhandled when nobody reads it.
static bool chosen_by_the_program(const ObjectHeader& h) {
  if ((h.flags & kFlagRawMessage) == 0) return false;
  switch (static_cast<ErrorKind>(h.error_kind)) {
    case ErrorKind::kTaskCancelled:
    case ErrorKind::kActorDied:
    case ErrorKind::kActorUnavailable:
    case ErrorKind::kPlacementGroupRemoved:
      return true;
    default:
      return false;
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
      if (chosen_by_the_program(h)) e.flags |= kEntryRead;  // never reported as unhandled
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
  residency_.after_seal();
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
  auto readable = [&](size_t i) {  // sealed or spilled (pin() restores it), or gone
    int64_t slot = table_.find(ids[i]);
    if (slot < 0) return true;
    ObjectEntry& e = table_.at(slot);
    if (e.state != SlotState::kSealed && e.state != SlotState::kSpilled) return false;
    if ((e.flags & kEntryError) != 0) e.flags |= kEntryRead;  // a wait that saw it handled it
    return true;
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

bool Store::held_unreported(ObjectEntry& e) {
  if ((e.flags & (kEntryError | kEntryRead)) != kEntryError ||
      (e.state != SlotState::kSealed && e.state != SlotState::kSpilled)) {
    return false;
  }
  if (ctl_->unreported_count == kMaxUnreported) {
    ++ctl_->unreported_dropped;
    return false;
  }
  e.flags |= kEntryRead;  // the driver reads it next; then it is freed as any object
  e.refs = 1;             // the list's hold, handed to take_unreported()'s caller
  ctl_->unreported[ctl_->unreported_count++] = e.id;
  // release: the reporter reads the list under the lock anyway; it sleeps on the word.
  ctl_->unreported_seq.fetch_add(1, std::memory_order_release);
  futex_wake(&ctl_->unreported_seq, 1);  // rare: a failure nobody read
  return true;
}

std::vector<ObjectID> Store::take_unreported(int64_t timeout_ns, uint64_t* dropped) {
  std::vector<ObjectID> ids;
  *dropped = 0;
  for (bool waited = false; !closed(); waited = true) {
    uint32_t seq;
    {
      Locked lock(*this);
      ids.assign(ctl_->unreported, ctl_->unreported + ctl_->unreported_count);
      ctl_->unreported_count = 0;
      std::swap(*dropped, ctl_->unreported_dropped);
      // Read under the lock, as additions bump it: one made after this read wakes the wait.
      seq = ctl_->unreported_seq.load(std::memory_order_relaxed);
    }
    if (!ids.empty() || *dropped != 0 || waited || timeout_ns == 0) break;
    futex_wait(&ctl_->unreported_seq, seq, timeout_ns);
  }
  return ids;
}

void Store::free_slot(int64_t slot, std::vector<ObjectID>& released) {
  ObjectEntry& e = table_.at(slot);
  if (held_unreported(e)) return;
  uint64_t payload = e.payload;
  if (e.state == SlotState::kSpilled) spill_.forget(e);
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
        if ((e.flags & kEntryError) != 0) e.flags |= kEntryRead;  // a failure read is handled
        e.last_access = ++ctl_->access_clock;
        note(id, 0, 1);
        return ObjectView{seg_->base() + e.payload, e.size};
      }
      if (st != SlotState::kSpilled && (e.flags & kEntryRestoring) == 0) {
        return Status(StatusCode::kNotReady, "object not sealed yet");
      }
    }
    if (st == SlotState::kSpilled) {
      Status r = spill_.restore(id);
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
  ids.erase(
      std::remove_if(ids.begin(), ids.end(), [this](const ObjectID& id) { return sealed(id); }),
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
                    ctl_->recoveries,     ctl_->spill.objects,   ctl_->spill.bytes,
                    ctl_->spill.spills_total, ctl_->spill.restores_total};
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

// --- large copies ------------------------------------------------------------------------

void Store::copy_in(uint8_t* dst, const uint8_t* src, size_t len) {
  parallel_copy(dst, src, len, copy_threads_, &Residency::prepare_thunk, &residency_);
}

}  // namespace ember
