// Spiller: choosing victims, writing a batch, restoring, the punch queue and the background
// spiller thread. The protocol and its invariants (S1-S6) are in spill.h.
#include "spill.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "checksum.h"
#include "store.h"

namespace ember {

// A batch of objects goes into one file (creating a file costs 8-270 us on this VM's ext4,
// more than writing 16 KiB), each object at a 4 KiB-aligned offset behind a 64-byte header
// (its id, size and checksum: a file that changed on disk makes the object lost, never
// wrong). An object leaving its file (restored or freed) punches its pages out; the process
// that punches the file's last allocated block deletes it (S4).

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

SpillControl& Spiller::ctl() const { return s_.ctl_->spill; }

bool Spiller::enabled() const { return ctl().dir[0] != 0; }

void Spiller::start(double high_water) {
  thread_.start([this, high_water](BackgroundThread& t) { run(t, high_water); });
}

void Spiller::forget(const ObjectEntry& e) {
  release(e.spilled_at, e.size);
  --ctl().objects;
  ctl().bytes -= e.size;
}

uint64_t Spiller::undo_restore(ObjectEntry& e) {
  const uint64_t payload = e.payload;
  e.flags &= ~uint32_t{kEntryRestoring};
  e.state = SlotState::kSpilled;  // spilled_at still says where: the file is intact
  e.payload = 0;
  e.pins = 0;
  return payload;
}

size_t Spiller::undo_spills(uint32_t client, int32_t pid) {
  uint64_t dead = 0;  // bit i: slot i is one of its batches
  for (uint32_t i = 0; i < kMaxSpillBatches; ++i) {
    const SpillBatch& b = ctl().batches[i];
    if (b.pid != 0 && b.pid == pid && b.client == client) dead |= uint64_t{1} << i;
  }
  if (dead == 0) return 0;  // the usual death: no batch in flight, no walk of the table
  size_t n = 0;
  s_.table_.for_each_live([&](int64_t, ObjectEntry& e) {
    const uint32_t batch = (e.flags & kEntryBatchMask) >> kEntryBatchShift;
    if ((e.flags & kEntrySpilling) == 0 || ((dead >> batch) & 1) == 0) return;
    // Step 3 never ran for it: still SEALED, its bytes in place, as before step 1.
    e.flags &= ~(uint32_t{kEntrySpilling} | kEntryBatchMask);
    ++n;
  });
  for (uint32_t i = 0; i < kMaxSpillBatches; ++i) {  // last, as in step 3 (S7)
    if (((dead >> i) & 1) != 0) ctl().batches[i] = SpillBatch{};
  }
  return n;
}

std::string Spiller::path(uint64_t file) const {
  char name[24];
  std::snprintf(name, sizeof name, "/spill-%06llx", static_cast<unsigned long long>(file));
  return std::string(ctl().dir) + name;
}

void Spiller::punch_file(const SpillRelease& r) const {
  const std::string file = path(spill_file(r.packed));
  int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  const uint64_t len = spilled_span(r.size);
  struct stat st{};
  // Where holes cannot be punched the file stays until the session's spill directory goes.
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(spill_offset(r.packed)), static_cast<off_t>(len)) == 0 &&
      fstat(fd, &st) == 0 && st.st_blocks == 0) {
    unlink(file.c_str());  // its last object is gone (another process may have beaten us)
  }
  ::close(fd);
}

void Spiller::release(uint64_t packed, uint64_t size) {
  // Bounded in bytes too, so a spiller thread that falls behind never holds much disk.
  if (ctl().n_releases < kReleaseQueue && ctl().release_bytes + size <= kMaxDeferredRelease) {
    ctl().releases[ctl().n_releases++] = SpillRelease{packed, size};
    ctl().release_bytes += size;
  } else {
    unqueued_.push_back(SpillRelease{packed, size});
  }
}

Status Spiller::make_room(uint64_t size) {
  for (;;) {
    bool in_flight;
    {
      Store::Locked lock(s_);
      if (s_.alloc_.largest_free() >= size) return Status::OK();
      in_flight = memory_in_flight();
    }
    // At least kMinBatch at a time, so that a stream of small allocations (or restores)
    // does not pay a scan of the table and a file for each.
    int disk_errno = 0;
    if (spill_batch(std::max(size, kMinBatch), &disk_errno) != 0) continue;
    // A disk that refuses writes will refuse the ones in flight too: say so now.
    if (disk_errno != 0) return disk_error(ctl().dir, disk_errno);
    if (!in_flight) {
      // A batch that started since may be why ours spilled nothing (it took the victims, or
      // the last slot, S7): look again before giving up.
      Store::Locked lock(s_);
      in_flight = memory_in_flight();
    }
    if (!in_flight) {
      return Status(StatusCode::kStoreFull,
                    "spilling cannot make room: the rest is pinned or in use");
    }
    // Memory on its way back: free blocks the idle trim holds out of the free lists while it
    // punches their pages, or objects another thread is writing out (or a dead one was,
    // until release_client undoes its batch, S7). Wait for it rather than report the store
    // full.
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

bool Spiller::memory_in_flight() const {
  if (s_.ctl_->trimming_bytes != 0) return true;
  for (const SpillBatch& b : ctl().batches) {
    if (b.pid != 0) return true;
  }
  return false;
}

int Spiller::take_batch_slot() {
  for (uint32_t i = 0; i < kMaxSpillBatches; ++i) {
    SpillBatch& b = ctl().batches[i];
    if (b.pid != 0) continue;
    b.client = s_.client_;
    b.pid = s_.pid_;  // last: the slot is taken once it names a process
    return static_cast<int>(i);
  }
  return -1;
}

size_t Spiller::spill_batch(uint64_t bytes, int* disk_errno) {
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
  uint64_t file;
  int batch;  // this batch's slot in ctl().batches (S7)
  {
    Store::Locked lock(s_);
    // Taken before the first victim is flagged, so a death anywhere in the batch leaves a
    // slot that names the process for release_client to undo (S7).
    batch = take_batch_slot();
    if (batch < 0) return 0;  // every slot taken: make_room waits for one to end
    s_.table_.for_each_live([&](int64_t slot, const ObjectEntry& e) {
      // Objects holding nested refs stay: their list of refs lives in their bytes.
      if (e.state != SlotState::kSealed || e.pins != 0 || e.refs == 0 || e.payload == 0 ||
          (e.flags & (kEntrySpilling | kEntryHasRefs)) != 0) {
        return;
      }
      victims.push_back(
          Victim{e.last_access, slot, e.id, s_.seg_->base() + e.payload, e.size, 0, false});
    });
    std::sort(victims.begin(), victims.end(),
              [](const Victim& a, const Victim& b) { return a.last_access < b.last_access; });
    uint64_t total = 0, offset = 0;
    size_t n = 0;
    while (n < victims.size() && n < kMaxBatch && total < bytes) {
      victims[n].offset = offset;
      offset += spilled_span(victims[n].size);
      total += victims[n++].size;
    }
    victims.resize(n);
    if (victims.empty()) {
      ctl().batches[batch] = SpillBatch{};
      return 0;
    }
    for (const Victim& v : victims) {
      ObjectEntry& e = s_.table_.at(v.slot);
      ++e.pins;  // the spiller's pin: the bytes stay put while they are written out
      s_.note(e.id, 0, 1);
      e.flags |= kEntrySpilling | (static_cast<uint32_t>(batch) << kEntryBatchShift);
    }
    file = ctl().files++;
  }
  // Written without the lock. A failed write (disk full) keeps that object and the rest of
  // the batch in memory.
  const std::string name = path(file);
  int fd = open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  int write_errno = fd < 0 ? errno : 0;
  if (void (*hook)() = debug_step2_hook.load(std::memory_order_relaxed)) hook();
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
    Store::Locked lock(s_);
    std::vector<ObjectID> released;
    for (const Victim& v : victims) {
      int64_t slot = s_.table_.find(v.id);  // still there: our pin keeps it
      ObjectEntry& e = s_.table_.at(slot);
      e.flags &= ~(uint32_t{kEntrySpilling} | kEntryBatchMask);
      s_.note(e.id, 0, -1);
      if (!v.written || e.pins != 1 || e.refs == 0) {
        // Not written, someone started reading it (keep it in memory), or its last ref went
        // while we wrote (free it now: our pin was the last thing holding it).
        --e.pins;
        if (fd >= 0) unqueued_.push_back({pack_spill(file, v.offset), v.size});  // now
        if (e.refs == 0 && e.pins == 0) s_.free_slot(slot, released);
        continue;
      }
      s_.alloc_.free(e.payload);
      e.payload = 0;
      e.pins = 0;
      e.state = SlotState::kSpilled;
      e.spilled_at = pack_spill(file, v.offset);
      ++ctl().objects;
      ctl().bytes += e.size;
      ++ctl().spills_total;
      ++spilled;
    }
    s_.release_all(released);
    ctl().batches[batch] = SpillBatch{};  // last: after every victim is unflagged (S7)
  }
  return spilled;
}

bool Spiller::still_wanted(int64_t slot) {
  Store::Locked lock(s_);
  const ObjectEntry& e = s_.table_.at(slot);  // our pin keeps the entry in this slot
  return e.refs > 0 && e.pins == 1;
}

bool Spiller::write_unless_unwanted(int fd, int64_t slot, const uint8_t* data, uint64_t size,
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

Status Spiller::restore(const ObjectID& id) {
  for (;;) {
    uint8_t* dst;
    uint64_t size, packed;
    {
      Store::Locked lock(s_);
      int64_t slot = s_.table_.find(id);
      if (slot < 0) return Store::not_found(id);
      ObjectEntry& e = s_.table_.at(slot);
      if (e.state != SlotState::kSpilled) return Status::OK();  // someone else restored it
      size = e.size;
      packed = e.spilled_at;
      auto off = s_.alloc_.allocate(e.size, id.hi, id.lo);
      if (off.ok()) {
        e.payload = *off;
        e.state = SlotState::kCreated;
        e.flags |= kEntryRestoring;
        e.owner_pid = s_.pid_;
        e.pins = 1;  // the restorer's, as a writer's
        dst = s_.seg_->base() + *off;
      } else {
        dst = nullptr;
      }
    }
    if (dst == nullptr) {
      Status room = make_room(size);
      if (room.code() == StatusCode::kStoreFull) {
        Store::Locked lock(s_);
        return s_.full_error(size,
                             Status(StatusCode::kStoreFull, "cannot restore a spilled object"));
      }
      if (!room.ok()) {
        return Status(room.code(), "cannot restore object " + id.hex() + " (" +
                                       format_bytes(size) + "): " + room.message());
      }
      continue;
    }
    const std::string file = path(spill_file(packed));
    const std::string why = read_back(file, spill_offset(packed), id, dst, size);
    const bool ok = why.empty();
    bool wake;
    {
      Store::Locked lock(s_);
      int64_t slot = s_.table_.find(id);
      ObjectEntry& e = s_.table_.at(slot);
      e.flags &= ~uint32_t{kEntryRestoring};
      e.pins = 0;
      wake = e.waiters != 0;
      e.waiters = 0;
      if (!ok) {
        // The file is gone or unreadable: the object is lost. It stays SPILLED so that every
        // reader (those waiting for this restore are woken) gets the same error, not a hang.
        s_.alloc_.free(e.payload);
        e.payload = 0;
        e.state = SlotState::kSpilled;
      } else {
        e.state = SlotState::kSealed;
        e.last_access = ++s_.ctl_->access_clock;
        release(packed, size);
        --ctl().objects;
        ctl().bytes -= size;
        ++ctl().restores_total;
      }
    }
    if (wake) s_.wake_waiters();
    if (!ok) {
      return Status(StatusCode::kNotFound,
                    "object " + id.hex() + " is lost: it was spilled to " + file + ", which " +
                        why + ". Its data cannot be recovered; recreate it (re-run the task or "
                        "put it again)");
    }
    return Status::OK();
  }
}

std::string Spiller::read_back(const std::string& path, uint64_t offset, const ObjectID& id,
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

void Spiller::run(BackgroundThread& t, double high_water) {
  // Spilling here, ahead of need, keeps writes to disk off the threads that allocate: they
  // only spill themselves when a burst outruns this loop. Down to 5 points under the mark, so
  // it does not run for every object. Nice 19 (see spill.h): it still gets a small, steady
  // share when the user's tasks keep every core busy.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  const double low_water = high_water - 0.05;
  // Woken only by stop(): the queue and the fill are looked at every 100 ms.
  while (t.wait_for(std::chrono::milliseconds(100), [] { return false; })) {
    std::vector<SpillRelease> releases;
    {
      Store::Locked lock(s_);
      releases.assign(ctl().releases, ctl().releases + ctl().n_releases);
      ctl().n_releases = 0;
      ctl().release_bytes = 0;
    }
    for (const SpillRelease& r : releases) punch_file(r);
    auto over = [&](double mark) {
      Store::Locked lock(s_);
      AllocatorStats a = s_.alloc_.stats();
      return static_cast<double>(a.used_bytes) > mark * static_cast<double>(a.capacity);
    };
    if (high_water <= 0 || high_water >= 1 || !over(high_water)) continue;  // >= 1: never ahead
    while (!t.stopping() && over(low_water)) {
      uint64_t bytes;
      {
        Store::Locked lock(s_);
        AllocatorStats a = s_.alloc_.stats();
        // Down to the low-water mark, in batches of at least 4 MiB (an eighth of a small
        // store): a trickle of small puts would otherwise make a file for every few objects.
        bytes = std::max(
            a.used_bytes - static_cast<uint64_t>(low_water * static_cast<double>(a.capacity)),
            std::min(kMinBatch, a.capacity / 8));
      }
      if (spill_batch(bytes) == 0) break;
    }
  }
}

}  // namespace ember
