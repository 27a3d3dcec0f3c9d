// Tests for ember::Spiller (through the Store that owns it): spilled objects come back with
// the same bytes, in batches of one file each; the bytes that leave a file are punched out of
// it and the emptied file is deleted; a file that changed or went makes its objects lost, not
// wrong; a disk that refuses the spill fails the put and loses nothing; the background
// spiller keeps the store under its high-water mark and stops promptly; a spiller killed in
// the middle of a batch is undone by its release, and a full table of batches starts none.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store.h"
#include "store_test_util.h"

namespace ember {
namespace {

using namespace testing_util;  // NOLINT: the shared helpers of the store's tests

/// A store that spills to `dir` only on demand (no spilling ahead, no idle trim) unless told,
/// with a ledger for client 1 (a worker, for the tests that kill one).
std::shared_ptr<Store> spilling_store(const std::string& dir, uint64_t capacity = 8 * kMiB,
                                      double high_water = 1.0) {
  StoreOptions o;
  o.capacity = capacity;
  o.prefault = false;
  o.copy_threads = 1;
  o.spill_dir = dir;
  o.spill_high_water = high_water;
  o.idle_trim_s = 0;
  o.ledger_clients = 2;
  return make_store(o);
}

uint64_t file_bytes(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

TEST(SpillTest, SpilledObjectsComeBackWithTheSameBytesAndLeaveNoFile) {
  TempDir dir;
  {
    auto s = spilling_store(dir.path());
    ASSERT_NE(s, nullptr);
    // 24 MiB of 48 KiB objects (and a few odd sizes) through an 8 MiB store: most are
    // spilled, in batches.
    std::vector<ObjectID> ids;
    std::vector<uint64_t> sizes;
    for (int i = 0; i < 512; ++i) {
      ids.push_back(s->new_id());
      sizes.push_back(i % 50 == 0 ? static_cast<uint64_t>(i % 3) : (48 << 10) + (i % 7) * 1001);
      ASSERT_NE(put(*s, ids.back(), sizes.back(), static_cast<uint8_t>(i)), nullptr) << i;
    }
    StoreStats st = s->stats();
    EXPECT_GT(st.spilled_objects, 300u);
    EXPECT_EQ(st.spills_total, st.spilled_objects);
    // Batches of at least 4 MiB: 80 objects or more per file.
    EXPECT_LE(dir.files().size() * 64, st.spilled_objects) << "one file per batch";
    EXPECT_TRUE(CheckOk(*s));
    for (int i = 0; i < 512; ++i) {  // each comes back intact (restoring spills others)
      ASSERT_TRUE(HasPattern(*s, ids[i], sizes[i], static_cast<uint8_t>(i))) << i;
    }
    EXPECT_GT(s->stats().restores_total, 300u);
    std::vector<ObjectID> all = ids;
    EXPECT_EQ(s->drop_sealed(all), 0u) << "spilled objects count as sealed";
    for (const ObjectID& id : ids) s->release_ref(id);
    // The spiller thread punches the freed objects out and deletes each emptied file.
    EXPECT_TRUE(eventually([&] { return dir.files().empty(); })) << dir.files().size();
    EXPECT_EQ(s->stats().num_objects, 0u);
    EXPECT_EQ(s->stats().spilled_objects, 0u);
    EXPECT_EQ(s->stats().spilled_bytes, 0u);
    EXPECT_TRUE(CheckOk(*s));
  }
  EXPECT_TRUE(dir.files().empty());
}

TEST(SpillTest, BytesThatLeaveAFileArePunchedOutAndTheEmptiedFileIsDeleted) {
  TempDir dir;
  auto s = spilling_store(dir.path());
  ASSERT_NE(s, nullptr);
  constexpr uint64_t kSize = 256 << 10;
  std::vector<ObjectID> ids;
  for (int i = 0; i < 36; ++i) {  // the 29th or so does not fit: one batch of >= 4 MiB goes
    ids.push_back(s->new_id());
    ASSERT_NE(put(*s, ids.back(), kSize, static_cast<uint8_t>(i)), nullptr);
  }
  ASSERT_EQ(dir.files().size(), 1u);
  const std::string file = dir.path() + "/" + dir.files()[0];
  const uint64_t spilled = s->stats().spilled_objects;
  ASSERT_GE(spilled, 16u);
  const uint64_t span = (64 + kSize + 4095) / 4096 * 4096;  // header + bytes, whole blocks
  const uint64_t full = file_bytes(file);
  EXPECT_GE(full, spilled * span);

  // The oldest went first. Restoring half of them punches their spans out of the file.
  for (uint64_t i = 0; i < spilled / 2; ++i) {
    ASSERT_TRUE(HasPattern(*s, ids[i], kSize, static_cast<uint8_t>(i))) << i;
  }
  EXPECT_EQ(s->stats().spilled_objects, spilled - spilled / 2);
  EXPECT_TRUE(eventually([&] { return file_bytes(file) <= full - (spilled / 2) * span; }))
      << file_bytes(file) << " of " << full;
  EXPECT_GT(file_bytes(file), 0u) << "the others are still in it";
  const uint64_t last = spilled - 1;  // and still readable next to the holes
  ASSERT_TRUE(HasPattern(*s, ids[last], kSize, static_cast<uint8_t>(last)));
  // The rest are freed while spilled; once every object has left the file, it goes.
  for (uint64_t i = spilled / 2; i < last; ++i) s->release_ref(ids[i]);
  EXPECT_TRUE(eventually([&] { return dir.files().empty(); })) << file_bytes(file);
  EXPECT_EQ(s->stats().spilled_objects, 0u);
  EXPECT_EQ(s->stats().spilled_bytes, 0u);
  EXPECT_EQ(s->stats().spills_total, spilled) << "nothing else was spilled meanwhile";
  EXPECT_TRUE(CheckOk(*s));
}

/// Fills an 8 MiB store so that its first object is spilled; returns that object's id.
ObjectID spill_first(Store& s, std::vector<ObjectID>& ids, uint64_t size) {
  for (int i = 0; i < 40; ++i) {
    ids.push_back(s.new_id());
    EXPECT_NE(put(s, ids.back(), size, static_cast<uint8_t>(i)), nullptr);
  }
  EXPECT_GT(s.stats().spilled_objects, 0u);
  return ids[0];
}

TEST(SpillTest, AChangedOrMissingFileMakesTheObjectLostNeverWrong) {
  TempDir dir;
  auto s = spilling_store(dir.path());
  ASSERT_NE(s, nullptr);
  constexpr uint64_t kSize = 256 << 10;
  std::vector<ObjectID> ids;
  const ObjectID first = spill_first(*s, ids, kSize);
  ASSERT_EQ(dir.files().size(), 1u);
  const std::string file = dir.path() + "/" + dir.files()[0];

  // One byte of the first object's payload changes on disk (it sits at offset 0, behind its
  // 64-byte header).
  int fd = open(file.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t b = 0;
  ASSERT_EQ(pread(fd, &b, 1, 64 + 1000), 1);
  b ^= 0xFF;
  ASSERT_EQ(pwrite(fd, &b, 1, 64 + 1000), 1);
  close(fd);
  auto v = s->pin(first);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kNotFound);
  EXPECT_NE(v.status().message().find("checksum"), std::string::npos) << v.status().message();
  EXPECT_NE(v.status().message().find(file), std::string::npos) << v.status().message();
  auto again = s->pin(first);
  ASSERT_FALSE(again.ok()) << "it stays lost: every reader gets the error";
  EXPECT_EQ(again.status().message(), v.status().message());
  EXPECT_TRUE(s->is_sealed(first)) << "still SPILLED, so a wait on it does not hang";

  // The file is cut short: the objects at its end are lost.
  ASSERT_EQ(truncate(file.c_str(), 4096), 0);
  auto cut = s->pin(ids[5]);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("too short"), std::string::npos) << cut.status().message();

  // The file is gone.
  ASSERT_EQ(unlink(file.c_str()), 0);
  auto gone = s->pin(ids[6]);
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("cannot be read back"), std::string::npos)
      << gone.status().message();

  // Objects in memory are untouched, and a lost object can still be released.
  EXPECT_TRUE(HasPattern(*s, ids.back(), kSize, static_cast<uint8_t>(ids.size() - 1)));
  for (const ObjectID& id : ids) s->release_ref(id);
  EXPECT_TRUE(eventually([&] { return s->stats().num_objects == 0; }));
  EXPECT_TRUE(CheckOk(*s));
}

TEST(SpillTest, ADiskThatRefusesTheSpillFailsThePutAndLosesNothing) {
  TempDir dir;
  const std::string gone = dir.path() + "/gone";
  ASSERT_EQ(mkdir(gone.c_str(), 0700), 0);
  auto s = spilling_store(gone);
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(rmdir(gone.c_str()), 0);  // every spill file now fails to open (ENOENT)
  constexpr uint64_t kSize = 512 << 10;
  std::vector<ObjectID> ids;
  Status failed;
  for (int i = 0; i < 40 && failed.ok(); ++i) {
    ObjectID id = s->new_id();
    auto r = s->create_object(id, kSize);
    if (!r.ok()) {
      failed = r.status();
      break;
    }
    for (uint64_t k = 0; k < kSize; ++k) (*r)[k] = static_cast<uint8_t>(i + k * 7);
    ASSERT_TRUE(s->seal(id).ok());
    ids.push_back(id);
  }
  ASSERT_FALSE(failed.ok()) << "8 MiB cannot hold 40 objects of 512 KiB";
  EXPECT_EQ(failed.code(), StatusCode::kIOError) << failed.message();
  EXPECT_NE(failed.message().find(gone), std::string::npos) << failed.message();
  EXPECT_EQ(s->stats().spilled_objects, 0u);
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE(HasPattern(*s, ids[i], kSize, static_cast<uint8_t>(i))) << "nothing lost";
  }
  s->release_ref(ids[0]);
  s->release_ref(ids[1]);
  EXPECT_TRUE(s->create_object(s->new_id(), kSize).ok()) << "room again once refs go";
  EXPECT_TRUE(CheckOk(*s));
}

TEST(SpillTest, TheBackgroundSpillerKeepsTheStoreUnderItsHighWaterMark) {
  TempDir dir;
  auto s = spilling_store(dir.path(), 16 * kMiB, /*high_water=*/0.5);
  ASSERT_NE(s, nullptr);
  constexpr uint64_t kSize = 256 << 10;
  std::vector<ObjectID> ids;
  for (int i = 0; i < 48; ++i) {  // 12 MiB: 75% of the store, below what it holds
    ids.push_back(s->new_id());
    ASSERT_NE(put(*s, ids.back(), kSize, static_cast<uint8_t>(i)), nullptr);
  }
  // Down to 5 points under the mark, ahead of any need.
  EXPECT_TRUE(eventually([&] { return s->stats().used_bytes <= 8 * kMiB; }))
      << s->stats().used_bytes;
  EXPECT_GT(s->stats().spills_total, 0u);
  for (int i = 0; i < 48; ++i) {
    ASSERT_TRUE(HasPattern(*s, ids[i], kSize, static_cast<uint8_t>(i))) << i;
  }
  EXPECT_TRUE(CheckOk(*s));
}

TEST(SpillTest, ClosingStopsTheSpillerThreadPromptly) {
  TempDir dir;
  const auto t0 = Clock::now();
  for (int i = 0; i < 10; ++i) {
    auto s = spilling_store(dir.path(), 8 * kMiB, 0.5);
    ASSERT_NE(s, nullptr);
    std::vector<ObjectID> ids;
    for (int k = 0; k < 20; ++k) {  // above the mark: the thread spills when it wakes
      ids.push_back(s->new_id());
      put(*s, ids.back(), 256 << 10, static_cast<uint8_t>(k));
    }
    s->close();  // joins the thread: mid-sleep it is woken, mid-batch it finishes the batch
    EXPECT_TRUE(s->closed());
  }
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(3)) << "not a 100 ms sleep per close";
}

// --- a spiller that dies in the middle of a batch ------------------------------------------

constexpr uint64_t kVictim = kMiB;
constexpr int kVictims = 3;
constexpr uint64_t kHeld = 512 << 10;

/// An 8 MiB store filled with kVictims objects of 1 MiB, the only ones it may spill (one
/// batch takes them all), and then objects of 512 KiB held pinned until less than 512 KiB
/// is free: an object of 1 MiB fits only by spilling the victims.
struct Crowd {
  std::vector<ObjectID> victims;
  std::vector<ObjectID> held;
};

Crowd crowd(Store& s) {
  Crowd c;
  for (int i = 0; i < kVictims; ++i) {
    c.victims.push_back(s.new_id());
    put(s, c.victims.back(), kVictim, static_cast<uint8_t>(i));
  }
  while (s.stats().largest_free >= kHeld) {  // fits: no spill
    c.held.push_back(s.new_id());
    put(s, c.held.back(), kHeld, 0);
    EXPECT_TRUE(s.pin(c.held.back()).ok());
  }
  EXPECT_FALSE(c.held.empty());
  return c;
}

void release(Store& s, const Crowd& c) {
  for (const ObjectID& id : c.held) {
    s.unpin(id);
    s.release_ref(id);
  }
  for (const ObjectID& id : c.victims) s.release_ref(id);
}

/// Batches in flight: taken slots of SpillControl::batches, read without the lock (a peek for
/// tests, when no other thread of the test takes or frees one).
uint32_t batches_in_flight(const Store& s) {
  const Segment& seg = s.segment();
  const auto* ctl = seg.at<StoreControl>(seg.header()->store_offset);
  uint32_t n = 0;
  for (const SpillBatch& b : ctl->spill.batches) {
    n += __atomic_load_n(&b.pid, __ATOMIC_ACQUIRE) != 0 ? 1 : 0;
  }
  return n;
}

/// The write end of the pipe a forked spiller reports on from step 2 of its batch.
int g_step2_fd = -1;

/// Spiller::debug_step2_hook of the forked spiller: says it is in step 2, waits to be killed.
void report_step2_and_wait() {
  const char c = 1;
  if (write(g_step2_fd, &c, 1) != 1) _exit(5);
  for (;;) pause();
}

/// Forks a worker (client 1, with its own mapping of the store, as a worker attaches) whose
/// put of `size` bytes must spill, and returns its pid once it is parked in step 2 of that
/// batch, its victims flagged and pinned; -1 if it never got there within 10 s.
pid_t fork_spiller_parked_in_step2(Store& s, uint64_t size) {
  int p[2];
  if (pipe(p) != 0) return -1;
  const int fd = s.fd();
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(p[0]);
    g_step2_fd = p[1];
    Spiller::debug_step2_hook.store(&report_step2_and_wait, std::memory_order_relaxed);
    auto mine = Store::attach(dup(fd));
    if (!mine.ok()) _exit(3);
    (*mine)->set_client(1);
    (void)(*mine)->create_object((*mine)->new_id(), size);
    _exit(4);  // the put never spilled
  }
  close(p[1]);
  pollfd in{p[0], POLLIN, 0};
  char c = 0;
  const bool parked = poll(&in, 1, 10'000) == 1 && read(p[0], &c, 1) == 1;
  close(p[0]);
  if (!parked) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
  }
  return pid;
}

/// A put of `size` bytes on a thread of its own, so that one that waits forever fails the
/// test instead of hanging it (the thread is then left behind, detached).
class PutOnAThread {
 public:
  PutOnAThread(std::shared_ptr<Store> s, uint64_t size) : r_(std::make_shared<Outcome>()) {
    thread_ = std::thread([s, size, r = r_] {
      r->id = s->new_id();
      auto w = s->create_object(r->id, size);
      r->status = w.ok() ? s->seal(r->id) : w.status();
      r->done.store(true, std::memory_order_release);  // r's fields are read after this
    });
  }
  ~PutOnAThread() {
    if (r_->done.load(std::memory_order_acquire)) {
      thread_.join();
    } else {
      thread_.detach();  // stuck for good: the test has failed already
    }
  }
  PutOnAThread(const PutOnAThread&) = delete;
  PutOnAThread& operator=(const PutOnAThread&) = delete;

  /// True once the put returned, waiting at most `limit` for it.
  bool finished_within(std::chrono::milliseconds limit) {
    return eventually([&] { return r_->done.load(std::memory_order_acquire); }, limit);
  }
  /// After finished_within(): what the put returned, and the id it made.
  const Status& status() const { return r_->status; }
  const ObjectID& id() const { return r_->id; }

 private:
  struct Outcome {
    std::atomic<bool> done{false};
    ObjectID id;
    Status status;
  };
  std::shared_ptr<Outcome> r_;
  std::thread thread_;
};

TEST(SpillCrashTest, ASpillerKilledInStep2IsUndoneWhenItsClientIsReleased) {
  TempDir dir;
  auto s = spilling_store(dir.path());
  ASSERT_NE(s, nullptr);
  Crowd c = crowd(*s);
  const pid_t child = fork_spiller_parked_in_step2(*s, kVictim);
  ASSERT_GT(child, 0) << "the worker never reached step 2 of a batch";
  EXPECT_EQ(batches_in_flight(*s), 1u);
  kill_and_reap(child);

  // Its victims, pinned here too: now nothing in the store can be spilled. Until the dead
  // worker is released its batch is in flight, and a put that needs room waits for it.
  for (const ObjectID& id : c.victims) ASSERT_TRUE(s->pin(id).ok());
  PutOnAThread full(s, kVictim);
  EXPECT_FALSE(full.finished_within(std::chrono::milliseconds(200)))
      << full.status().message();
  // Its release gives back the victims' spiller pins (its ledger) and undoes its batch...
  EXPECT_EQ(s->release_client(1, child), static_cast<uint64_t>(kVictims));
  // ...so the put reports the store full, promptly: it used to wait for the batch forever.
  ASSERT_TRUE(full.finished_within(std::chrono::seconds(10)))
      << "make_room still waits for the dead spiller's batch";
  EXPECT_EQ(full.status().code(), StatusCode::kStoreFull) << full.status().message();
  EXPECT_NE(full.status().message().find("spilling cannot make room"), std::string::npos)
      << full.status().message();
  EXPECT_EQ(batches_in_flight(*s), 0u);
  EXPECT_EQ(s->stats().spills_total, 0u);
  EXPECT_TRUE(CheckOk(*s));

  // The victims are no longer flagged: unpinned, a new batch spills them to make room.
  for (const ObjectID& id : c.victims) s->unpin(id);
  const ObjectID big = s->new_id();
  ASSERT_NE(put(*s, big, kVictim, 77), nullptr) << "the victims could not be spilled again";
  EXPECT_EQ(s->stats().spills_total, static_cast<uint64_t>(kVictims));
  EXPECT_EQ(s->stats().spilled_objects, static_cast<uint64_t>(kVictims));
  EXPECT_EQ(dir.files().size(), 2u) << "the dead worker's file, never written, and the new one";
  EXPECT_EQ(batches_in_flight(*s), 0u);

  // And their bytes come back intact (from the new batch's file).
  s->release_ref(big);
  for (int i = 0; i < kVictims; ++i) {
    ASSERT_TRUE(HasPattern(*s, c.victims[i], kVictim, static_cast<uint8_t>(i))) << i;
  }
  EXPECT_GE(s->stats().restores_total, static_cast<uint64_t>(kVictims));
  EXPECT_TRUE(CheckOk(*s));
  release(*s, c);
  EXPECT_TRUE(eventually([&] { return s->stats().num_objects == 0; }));
  EXPECT_TRUE(CheckOk(*s));
}

/// Takes every slot of SpillControl::batches for process `pid` (ledger `client`), as step 1
/// of kMaxSpillBatches batches would, under the store's lock.
void take_every_batch_slot(Store& s, uint32_t client, int32_t pid) {
  const Segment& seg = s.segment();
  auto* ctl = seg.at<StoreControl>(seg.header()->store_offset);
  ASSERT_FALSE(ctl->lock.lock()) << "nobody died holding it";
  for (SpillBatch& b : ctl->spill.batches) b = SpillBatch{pid, client};
  ctl->lock.unlock();
}

TEST(SpillCrashTest, WithEveryBatchSlotTakenNoBatchStartsAndAPutWaitsForOne) {
  TempDir dir;
  auto s = spilling_store(dir.path());
  ASSERT_NE(s, nullptr);
  Crowd c = crowd(*s);  // the victims are free to spill
  // Every slot names a dead worker's batch (client 1, a pid above any pid_max).
  constexpr int32_t kGone = (1 << 22) + 1;
  take_every_batch_slot(*s, 1, kGone);
  ASSERT_EQ(batches_in_flight(*s), kMaxSpillBatches);

  // No batch can start, so the put waits, as for any batch in flight: nothing is spilled and
  // no file made. (Nor can its thread take a slot, so this one may peek at them.)
  PutOnAThread waits(s, kVictim);
  EXPECT_FALSE(waits.finished_within(std::chrono::milliseconds(300)))
      << waits.status().message();
  EXPECT_EQ(s->stats().spills_total, 0u);
  EXPECT_TRUE(dir.files().empty());
  // Another process's release leaves the slots alone: they name (client 1, kGone).
  EXPECT_EQ(s->release_client(1, kGone + 1), 0u);
  EXPECT_EQ(batches_in_flight(*s), kMaxSpillBatches);
  EXPECT_FALSE(waits.finished_within(std::chrono::milliseconds(50)));

  // Their process's release frees them (it held nothing, and they had no victims), and the
  // put goes on: its batch spills the victims.
  EXPECT_EQ(s->release_client(1, kGone), 0u);
  ASSERT_TRUE(waits.finished_within(std::chrono::seconds(10)));
  EXPECT_TRUE(waits.status().ok()) << waits.status().message();
  EXPECT_EQ(s->stats().spills_total, static_cast<uint64_t>(kVictims));
  EXPECT_EQ(batches_in_flight(*s), 0u);
  s->release_ref(waits.id());
  for (int i = 0; i < kVictims; ++i) {
    ASSERT_TRUE(HasPattern(*s, c.victims[i], kVictim, static_cast<uint8_t>(i))) << i;
  }
  release(*s, c);
  EXPECT_TRUE(CheckOk(*s));
}

}  // namespace
}  // namespace ember
