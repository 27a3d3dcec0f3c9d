// Tests for ember::Store: the object life cycle, a task's submission in one lock hold,
// errors and their messages, stats, a second attached store, close(), large copies, and
// recovery of the lock from a process killed while holding it. Spilling and residency have
// their own tests (test_spill.cc, test_residency.cc).
#include "store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "object_format.h"
#include "store_test_util.h"

namespace ember {
namespace {

using namespace testing_util;  // NOLINT: the shared helpers of the store's tests

std::shared_ptr<Store> make_store(uint64_t capacity = 8 * kMiB, bool prefault = false,
                                  uint64_t table_capacity = 0) {
  StoreOptions o;
  o.capacity = capacity;
  o.table_capacity = table_capacity;
  o.prefault = prefault;
  o.copy_threads = 2;
  auto r = Store::create(o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : nullptr;
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// --- creation -----------------------------------------------------------------------------------

TEST(StoreTest, CreateValidatesAndSizesTheStore) {
  StoreOptions o;
  o.prefault = false;
  o.capacity = kMiB - 1;
  auto small = Store::create(o);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), StatusCode::kInvalid);

  auto s = make_store(kMiB + 1, false, 100);
  ASSERT_NE(s, nullptr);
  StoreStats st = s->stats();
  EXPECT_EQ(st.capacity, kMiB + 4096) << "rounded up to whole pages";
  EXPECT_EQ(st.table_capacity, 128u) << "rounded up to a power of two";
  EXPECT_EQ(st.used_bytes, 0u);
  EXPECT_EQ(st.num_objects, 0u);
  EXPECT_EQ(st.high_water, 0u);
  EXPECT_EQ(st.largest_free, st.capacity - 64);
  EXPECT_EQ(st.recoveries, 0u);
  EXPECT_EQ(make_store()->stats().table_capacity, uint64_t{1} << 24)
      << "derived: at least 10M objects at the 7/8 limit";
  EXPECT_EQ(make_store(uint64_t{8} << 30)->stats().table_capacity, uint64_t{1} << 26)
      << "derived from a large store: one object per 256 bytes";
  EXPECT_TRUE(CheckOk(*s));
}

TEST(StoreTest, NewIdsAreUniqueAndCarryTheNodeTag) {
  auto s = make_store();
  ASSERT_NE(s, nullptr);
  EXPECT_NE(s->node_tag(), 0u);
  std::set<uint64_t> seen;
  uint64_t prev = 0;
  for (int i = 0; i < 1000; ++i) {
    ObjectID id = s->new_id();
    EXPECT_EQ(id.hi, s->node_tag());
    EXPECT_GT(id.lo, prev);
    prev = id.lo;
    seen.insert(id.lo);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

// --- life cycle ---------------------------------------------------------------------------------

TEST(StoreTest, CreateSealPinUnpinReleaseFreesAndReuses) {
  auto s = make_store();
  ASSERT_NE(s, nullptr);
  ObjectID id = s->new_id();
  auto w = s->create_object(id, 1000);
  ASSERT_TRUE(w.ok()) << w.status().message();
  uint8_t* p = *w;
  EXPECT_TRUE(s->segment().contains(p, 1000));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  EXPECT_FALSE(s->is_sealed(id));
  EXPECT_EQ(s->pin(id).status().code(), StatusCode::kNotReady) << "not sealed yet";
  for (int i = 0; i < 1000; ++i) p[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(s->stats().num_objects, 1u);

  ASSERT_TRUE(s->seal(id).ok());
  EXPECT_TRUE(s->is_sealed(id));
  auto v = s->pin(id);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->data, p);
  EXPECT_EQ(v->size, 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(v->data[i], static_cast<uint8_t>(i));
  s->unpin(id);
  EXPECT_TRUE(s->is_sealed(id)) << "the ref keeps it";
  EXPECT_TRUE(CheckOk(*s));

  const uint64_t hw = s->stats().high_water;
  s->release_ref(id);
  EXPECT_FALSE(s->is_sealed(id));
  EXPECT_EQ(s->pin(id).status().code(), StatusCode::kNotFound);
  StoreStats st = s->stats();
  EXPECT_EQ(st.used_bytes, 0u);
  EXPECT_EQ(st.num_objects, 0u);
  EXPECT_TRUE(CheckOk(*s));

  // The memory is reused: same place, no growth.
  ObjectID id2 = s->new_id();
  auto w2 = s->create_object(id2, 1000);
  ASSERT_TRUE(w2.ok());
  EXPECT_EQ(*w2, p);
  EXPECT_EQ(s->stats().high_water, hw);
  EXPECT_TRUE(CheckOk(*s));
}

TEST(StoreTest, AnObjectLivesWhileRefsOrPinsRemain) {
  auto s = make_store();
  ASSERT_NE(s, nullptr);

  // Released before sealing: freed by seal, when the writer's pin goes.
  ObjectID a = s->new_id();
  ASSERT_TRUE(s->create_object(a, 100).ok());
  s->release_ref(a);
  EXPECT_EQ(s->stats().num_objects, 1u) << "still being written";
  ASSERT_TRUE(s->seal(a).ok());
  EXPECT_EQ(s->stats().num_objects, 0u);
  EXPECT_EQ(s->stats().used_bytes, 0u);

  // Pinned past its last ref: freed by the last unpin.
  ObjectID b = s->new_id();
  put(*s, b, 100, 1);
  ASSERT_TRUE(s->pin(b).ok());
  ASSERT_TRUE(s->pin(b).ok());
  s->release_ref(b);
  EXPECT_TRUE(s->is_sealed(b));
  auto v = s->pin(b);
  ASSERT_TRUE(v.ok()) << "a pinned object can still be pinned";
  EXPECT_TRUE(has_pattern(v->data, 100, 1));
  s->unpin(b);
  s->unpin(b);
  EXPECT_TRUE(s->is_sealed(b));
  s->unpin(b);
  EXPECT_FALSE(s->is_sealed(b));
  s->unpin(b);  // extra unpins and releases of a freed object do nothing
  s->release_ref(b);

  // Extra refs.
  ObjectID c = s->new_id();
  put(*s, c, 100, 2);
  ASSERT_TRUE(s->add_ref(c).ok());
  s->release_ref(c);
  EXPECT_TRUE(s->is_sealed(c));
  s->release_ref(c);
  EXPECT_FALSE(s->is_sealed(c));

  // An unpin without a pin does not underflow.
  ObjectID d = s->new_id();
  put(*s, d, 100, 3);
  s->unpin(d);
  s->unpin(d);
  EXPECT_TRUE(s->is_sealed(d));
  EXPECT_TRUE(CheckOk(*s));
  s->release_ref(d);
  EXPECT_EQ(s->stats().used_bytes, 0u);
  EXPECT_TRUE(CheckOk(*s));
}

TEST(StoreTest, AbortFreesOnlyAnObjectBeingCreated) {
  auto s = make_store();
  ASSERT_NE(s, nullptr);
  ObjectID a = s->new_id();
  ASSERT_TRUE(s->create_object(a, 5000).ok());
  EXPECT_GT(s->stats().used_bytes, 0u);
  s->abort(a);
  EXPECT_EQ(s->stats().used_bytes, 0u);
  EXPECT_EQ(s->stats().num_objects, 0u);
  EXPECT_EQ(s->seal(a).code(), StatusCode::kInvalid) << "nothing left to seal";

  ObjectID b = s->new_id();
  put(*s, b, 100, 4);
  s->abort(b);  // sealed: abort does nothing
  EXPECT_TRUE(s->is_sealed(b));
  s->abort(s->new_id());  // unknown: nothing
  EXPECT_EQ(s->stats().num_objects, 1u);
  EXPECT_TRUE(CheckOk(*s));
}

TEST(StoreTest, MisuseIsReported) {
  auto s = make_store();
  ASSERT_NE(s, nullptr);
  ObjectID unknown = s->new_id();
  EXPECT_EQ(s->pin(unknown).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(s->add_ref(unknown).code(), StatusCode::kNotFound);
  EXPECT_EQ(s->seal(unknown).code(), StatusCode::kInvalid);
  EXPECT_FALSE(s->is_sealed(unknown));
  s->unpin(unknown);
  s->release_ref(unknown);

  ObjectID id = s->new_id();
  ASSERT_TRUE(s->create_object(id, 64).ok());
  const uint64_t used = s->stats().used_bytes;
  auto dup = s->create_object(id, 64);
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(s->stats().used_bytes, used) << "the block taken for the duplicate is given back";
  ASSERT_TRUE(s->seal(id).ok());
  EXPECT_EQ(s->seal(id).code(), StatusCode::kInvalid) << "sealed twice";
  EXPECT_EQ(s->create_object(id, 64).status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(CheckOk(*s));
}

TEST(StoreTest, ZeroByteObjects) {
  auto s = make_store();
  ASSERT_NE(s, nullptr);
  ObjectID id = s->new_id();
  ASSERT_TRUE(s->create_object(id, 0).ok());
  ASSERT_TRUE(s->seal(id).ok());
  auto v = s->pin(id);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->size, 0u);
  s->unpin(id);
  s->release_ref(id);
  EXPECT_EQ(s->stats().used_bytes, 0u);
}

// --- a task's submission ------------------------------------------------------------------------

/// The object `id` as list_objects() reports it (state EMPTY when it is not in the store).
Store::ObjectInfo info(Store& s, const ObjectID& id) {
  for (const Store::ObjectInfo& o : s.list_objects()) {
    if (o.id == id) return o;
  }
  return Store::ObjectInfo{id, SlotState::kEmpty, 0, 0, 0, 0, {}};
}

TEST(StoreTest, CreateTaskReturnsPromisesTheReturnsAndTakesTheTasksHold) {
  StoreOptions o;
  o.capacity = 8 * kMiB;
  o.prefault = false;
  o.ledger_clients = 2;
  auto r = Store::create(o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  Store& s = **r;
  s.set_client(1);  // a worker: its own holds are recorded in its ledger
  const ObjectID fn = s.new_id();
  put(s, fn, 100, 9);
  const ObjectID first = s.new_id(3);
  ASSERT_TRUE(s.create_task_returns(first, 3, fn).ok());

  for (uint64_t i = 0; i < 3; ++i) {
    Store::ObjectInfo ret = info(s, {first.hi, first.lo + i});
    EXPECT_EQ(ret.state, SlotState::kPending) << i;
    EXPECT_EQ(ret.refs, 1) << i;
    ASSERT_EQ(ret.holders.size(), 1u) << "the caller's ref, in its ledger";
    EXPECT_EQ(ret.holders[0], (std::pair<uint32_t, int32_t>{1, 1}));
  }
  Store::ObjectInfo f = info(s, fn);
  EXPECT_EQ(f.refs, 2) << "the put's ref and the task's";
  ASSERT_EQ(f.holders.size(), 1u);
  EXPECT_EQ(f.holders[0].second, 1) << "the task's hold is not recorded as the caller's";

  // The returns are fulfilled as any promise; the hold outlives the caller's ref.
  ASSERT_TRUE(s.create_object(first, 10).ok());
  ASSERT_TRUE(s.seal(first).ok());
  EXPECT_TRUE(s.is_sealed(first));
  s.release_ref(fn);
  EXPECT_TRUE(s.is_sealed(fn)) << "held by the task";
  s.release_ref(fn, /*mine=*/false);  // the task ends
  EXPECT_FALSE(s.contains(fn));
  for (uint64_t i = 0; i < 3; ++i) s.release_ref({first.hi, first.lo + i});
  EXPECT_EQ(s.stats().num_objects, 2u) << "a promise stays for its task to write";
  for (uint64_t i = 1; i < 3; ++i) {
    ASSERT_TRUE(s.create_object({first.hi, first.lo + i}, 10).ok());
    ASSERT_TRUE(s.seal({first.hi, first.lo + i}).ok());  // and goes: nobody holds it
  }
  EXPECT_EQ(s.stats().num_objects, 0u);
  EXPECT_TRUE(CheckOk(s));

  // No returns: only the hold.
  const ObjectID fn2 = s.new_id();
  put(s, fn2, 100, 9);
  ASSERT_TRUE(s.create_task_returns(s.new_id(0), 0, fn2).ok());
  EXPECT_EQ(info(s, fn2).refs, 2);
}

TEST(StoreTest, CreateTaskReturnsIsAllOrNothing) {
  auto s = make_store(8 * kMiB, false, 8);  // 8 slots, 7 usable
  ASSERT_NE(s, nullptr);
  const ObjectID fn = s->new_id();
  put(*s, fn, 100, 9);

  // The function object is gone: no return is made.
  const ObjectID gone = s->new_id();
  const ObjectID first = s->new_id(2);
  Status st = s->create_task_returns(first, 2, gone);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find(gone.hex()), std::string::npos) << st.message();
  EXPECT_FALSE(s->contains(first));
  EXPECT_FALSE(s->contains({first.hi, first.lo + 1}));
  EXPECT_EQ(s->stats().num_objects, 1u);

  // The table fills up after some of the returns: none is left, and the hold is not taken.
  const ObjectID many = s->new_id(10);
  st = s->create_task_returns(many, 10, fn);
  EXPECT_EQ(st.code(), StatusCode::kStoreFull);
  EXPECT_NE(st.message().find("table is full"), std::string::npos) << st.message();
  for (uint64_t i = 0; i < 10; ++i) EXPECT_FALSE(s->contains({many.hi, many.lo + i})) << i;
  EXPECT_EQ(s->stats().num_objects, 1u);
  EXPECT_EQ(info(*s, fn).refs, 1);
  EXPECT_TRUE(CheckOk(*s));
  // And then 6 fit.
  EXPECT_TRUE(s->create_task_returns(s->new_id(6), 6, fn).ok());
  EXPECT_EQ(info(*s, fn).refs, 2);
  EXPECT_TRUE(CheckOk(*s));

  s->close();
  EXPECT_EQ(s->create_task_returns(s->new_id(), 1, fn).code(), StatusCode::kClosed);
}

TEST(StoreTest, DropSealedKeepsWhatIsNotSealedInOrder) {
  auto s = make_store();
  ASSERT_NE(s, nullptr);
  const ObjectID sealed1 = s->new_id(), pending = s->new_id(), sealed2 = s->new_id(),
                 writing = s->new_id(), missing = s->new_id();
  put(*s, sealed1, 10, 1);
  put(*s, sealed2, 10, 2);
  ASSERT_TRUE(s->create_pending(pending, 1).ok());
  ASSERT_TRUE(s->create_object(writing, 10).ok());
  std::vector<ObjectID> ids{sealed1, pending, sealed2, writing, missing, sealed1};
  EXPECT_EQ(s->drop_sealed(ids), 3u);
  EXPECT_EQ(ids, (std::vector<ObjectID>{pending, writing, missing}))
      << "as is_sealed() says, one by one";
  for (const ObjectID& id : ids) EXPECT_FALSE(s->is_sealed(id));
  std::vector<ObjectID> none;
  EXPECT_EQ(s->drop_sealed(none), 0u);
  ASSERT_TRUE(s->seal(writing).ok());
  EXPECT_EQ(s->drop_sealed(ids), 2u);
  EXPECT_EQ(ids, (std::vector<ObjectID>{pending, missing}));
  s->close();
  std::vector<ObjectID> after{sealed1};
  EXPECT_EQ(s->drop_sealed(after), 1u) << "a closed store says nothing is sealed";
}

// --- streams (a streaming generator's items) ------------------------------------------------------

/// Writes item `k` of the stream of `done` as the producer does: only into its promise.
Status write_item(Store& s, const ObjectID& done, uint64_t k) {
  Result<uint8_t*> p = s.create_object(stream_item_id(done, k), 8, false, true,
                                       /*fulfil_only=*/true);
  if (!p.ok()) return p.status();
  std::memset(*p, static_cast<int>(k), 8);
  return s.seal(stream_item_id(done, k));
}

struct StreamFixture {
  std::shared_ptr<Store> s = make_store();
  ObjectID fn, done;
  StreamFixture() {
    fn = s->new_id();
    put(*s, fn, 100, 9);
    done = s->new_id();
    EXPECT_TRUE(s->create_task_returns(done, 1, fn, /*stream=*/true).ok());
  }
};

TEST(StoreStreamTest, ItemsGetOnePromiseAheadOfTheProducer) {
  StreamFixture f;
  Store& s = *f.s;
  EXPECT_EQ(info(s, stream_item_id(f.done, 0)).state, SlotState::kPending) << "from submission";
  EXPECT_FALSE(s.contains(stream_item_id(f.done, 1)));
  for (uint64_t k = 0; k < 3; ++k) {
    ASSERT_EQ(*s.stream_slot(f.done, k), Store::StreamSlot::kWrite) << k;
    EXPECT_EQ(info(s, stream_item_id(f.done, k + 1)).state, SlotState::kPending) << k;
    ASSERT_TRUE(write_item(s, f.done, k).ok()) << k;
    EXPECT_TRUE(s.is_sealed(stream_item_id(f.done, k))) << k;
  }
  Store::ObjectInfo item = info(s, stream_item_id(f.done, 1));
  EXPECT_EQ(item.refs, 1) << "the consumer's count";
  EXPECT_TRUE(item.holders.empty()) << "in no ledger";
  EXPECT_TRUE(CheckOk(s));
}

TEST(StoreStreamTest, ARetryWritesOnlyWhatIsStillPromised) {
  StreamFixture f;
  Store& s = *f.s;
  for (uint64_t k = 0; k < 3; ++k) {  // the first attempt: items 0-2, then it dies
    ASSERT_EQ(*s.stream_slot(f.done, k), Store::StreamSlot::kWrite);
    ASSERT_TRUE(write_item(s, f.done, k).ok());
  }
  s.release_ref(stream_item_id(f.done, 0), /*mine=*/false);  // the consumer took item 0, dropped it
  EXPECT_FALSE(s.contains(stream_item_id(f.done, 0)));
  // The retry from the start: item 0 is gone, 1 and 2 were written, 3 is the promise.
  EXPECT_EQ(*s.stream_slot(f.done, 0), Store::StreamSlot::kMissing);
  EXPECT_EQ(*s.stream_slot(f.done, 1), Store::StreamSlot::kProduced);
  EXPECT_EQ(*s.stream_slot(f.done, 2), Store::StreamSlot::kProduced);
  EXPECT_EQ(*s.stream_slot(f.done, 3), Store::StreamSlot::kWrite);
  ASSERT_TRUE(write_item(s, f.done, 3).ok());
  EXPECT_EQ(s.create_object(stream_item_id(f.done, 1), 8, false, true, true).status().code(),
            StatusCode::kAlreadyExists)
      << "an item is never written twice";
  EXPECT_TRUE(CheckOk(s));
}

TEST(StoreStreamTest, CloseGivesBackTheRestAndStopsTheProducer) {
  StreamFixture f;
  Store& s = *f.s;
  for (uint64_t k = 0; k < 4; ++k) {
    ASSERT_EQ(*s.stream_slot(f.done, k), Store::StreamSlot::kWrite);
    ASSERT_TRUE(write_item(s, f.done, k).ok());
  }
  ASSERT_EQ(*s.stream_slot(f.done, 4), Store::StreamSlot::kWrite);  // item 4 being written...
  ASSERT_TRUE(s.create_object(stream_item_id(f.done, 4), 8, false, true, true).ok());
  s.adopt_ref(stream_item_id(f.done, 0));  // the consumer handed out item 0 (no ledger: no-op)
  s.stream_close(f.done, 1);
  EXPECT_TRUE(s.is_sealed(stream_item_id(f.done, 0))) << "handed out: its ref keeps it";
  for (uint64_t k = 1; k < 4; ++k) EXPECT_FALSE(s.contains(stream_item_id(f.done, k))) << k;
  EXPECT_FALSE(s.contains(stream_item_id(f.done, 5))) << "the promise ahead is erased";
  ASSERT_TRUE(s.seal(stream_item_id(f.done, 4)).ok());
  EXPECT_FALSE(s.contains(stream_item_id(f.done, 4))) << "...is freed when sealed";
  // The producer finds the next item gone: it stops.
  EXPECT_EQ(*s.stream_slot(f.done, 5), Store::StreamSlot::kMissing);
  EXPECT_EQ(write_item(s, f.done, 5).code(), StatusCode::kNotFound);
  EXPECT_FALSE(s.contains(stream_item_id(f.done, 5))) << "a fulfil_only write makes nothing";
  EXPECT_TRUE(CheckOk(s));
}

TEST(StoreStreamTest, StreamIdsNeverMeetOrdinaryOrNamedOnes) {
  auto s = make_store(8 * kMiB, false, 1024);
  ASSERT_NE(s, nullptr);
  const ObjectID done = s->new_id();
  const ObjectID item = stream_item_id(done, 7);
  EXPECT_TRUE(is_stream_item(item));
  EXPECT_FALSE(is_stream_item(done));
  EXPECT_FALSE(is_stream_item(ObjectID{done.hi, kNamedIdBit | (uint64_t{1} << 62)}));
  EXPECT_EQ(item.hi, done.hi);
  // Many small streams of neighbouring tasks next to ordinary objects: every id is found.
  std::vector<ObjectID> ids;
  for (int t = 0; t < 40; ++t) {
    const ObjectID d = s->new_id();
    put(*s, d, 8, 1);
    ids.push_back(d);
    for (uint64_t k = 0; k < 8; ++k) {
      put(*s, stream_item_id(d, k), 8, 2);
      ids.push_back(stream_item_id(d, k));
    }
  }
  for (const ObjectID& id : ids) EXPECT_TRUE(s->is_sealed(id)) << id.hex();
  EXPECT_TRUE(CheckOk(*s));
  EXPECT_EQ(s->stream_slot(done, kMaxStreamItems - 1).status().code(), StatusCode::kInvalid);
}

// --- full ---------------------------------------------------------------------------------------

TEST(StoreTest, StoreFullMessageGivesTheSizes) {
  auto s = make_store(kMiB);
  ASSERT_NE(s, nullptr);
  auto r = s->create_object(s->new_id(), 2 * kMiB);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kStoreFull);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("2.0 MiB"), std::string::npos) << m;  // the object
  EXPECT_NE(m.find("1.0 MiB"), std::string::npos) << m;  // the store
  EXPECT_NE(m.find("object_store_memory"), std::string::npos) << m;

  ObjectID a = s->new_id();
  put(*s, a, 600 << 10, 5);
  auto r2 = s->create_object(s->new_id(), 600 << 10);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().code(), StatusCode::kStoreFull);
  StoreStats st = s->stats();
  const std::string& m2 = r2.status().message();
  EXPECT_NE(m2.find("600.0 KiB"), std::string::npos) << m2;
  EXPECT_NE(m2.find(format_bytes(st.used_bytes)), std::string::npos) << m2;
  EXPECT_NE(m2.find(format_bytes(st.largest_free)), std::string::npos) << m2;
  EXPECT_NE(m2.find("by 1 objects"), std::string::npos) << m2;
  EXPECT_EQ(st.num_objects, 1u) << "the failed create left nothing behind";
  EXPECT_TRUE(CheckOk(*s));

  // After the first object goes, the second fits.
  s->release_ref(a);
  ObjectID b = s->new_id();
  EXPECT_TRUE(s->create_object(b, 600 << 10).ok());
  EXPECT_TRUE(CheckOk(*s));
}

TEST(StoreTest, TableFullIsAStoreFullError) {
  auto s = make_store(8 * kMiB, false, 8);  // 8 slots, 7 usable
  ASSERT_NE(s, nullptr);
  std::vector<ObjectID> ids;
  for (int i = 0; i < 7; ++i) {
    ids.push_back(s->new_id());
    put(*s, ids.back(), 64, static_cast<uint8_t>(i));
  }
  const uint64_t used = s->stats().used_bytes;
  auto r = s->create_object(s->new_id(), 64);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == StatusCode::kStoreFull ||
              r.status().code() == StatusCode::kTableFull);
  EXPECT_NE(r.status().message().find("table is full"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("64 B"), std::string::npos) << r.status().message();
  EXPECT_EQ(s->stats().used_bytes, used) << "the block is given back";
  EXPECT_TRUE(CheckOk(*s));
  s->release_ref(ids[3]);
  EXPECT_TRUE(s->create_object(s->new_id(), 64).ok());
  EXPECT_TRUE(CheckOk(*s));
}

TEST(StoreTest, StatsFollowTheObjects) {
  auto s = make_store();
  ASSERT_NE(s, nullptr);
  std::vector<ObjectID> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(s->new_id());
    put(*s, ids.back(), 1000, 0);
  }
  StoreStats st = s->stats();
  EXPECT_EQ(st.num_objects, 10u);
  EXPECT_EQ(st.used_bytes, 10u * 1088);  // 1000 rounded to 1024, plus a 64-byte header
  EXPECT_EQ(st.high_water, 10u * 1088);
  EXPECT_EQ(st.largest_free, st.capacity - st.high_water - 64);
  for (const ObjectID& id : ids) s->release_ref(id);
  st = s->stats();
  EXPECT_EQ(st.num_objects, 0u);
  EXPECT_EQ(st.used_bytes, 0u);
  EXPECT_EQ(st.high_water, 10u * 1088) << "the high-water mark stays";
  EXPECT_EQ(st.largest_free, st.capacity - 64);
}

// --- a second process's view --------------------------------------------------------------------

TEST(StoreTest, ASecondStoreOnTheSameFdSharesTheObjects) {
  auto a = make_store();
  ASSERT_NE(a, nullptr);
  ObjectID x = a->new_id();
  uint8_t* px = put(*a, x, 5000, 9);

  auto r = Store::attach(dup(a->fd()));
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto b = *r;
  EXPECT_EQ(b->node_tag(), a->node_tag());
  EXPECT_NE(b->segment().base(), a->segment().base());
  EXPECT_TRUE(b->is_sealed(x));
  auto v = b->pin(x);
  ASSERT_TRUE(v.ok());
  EXPECT_NE(v->data, px) << "another mapping";
  EXPECT_EQ(v->data - b->segment().base(), px - a->segment().base()) << "same offset";
  EXPECT_TRUE(has_pattern(v->data, 5000, 9));
  b->unpin(x);

  // Ids stay unique across the two views; objects made in b are seen by a.
  ObjectID y = b->new_id();
  EXPECT_GT(y.lo, x.lo);
  put(*b, y, 3000, 10);
  auto va = a->pin(y);
  ASSERT_TRUE(va.ok());
  EXPECT_TRUE(has_pattern(va->data, 3000, 10));
  a->unpin(y);
  EXPECT_EQ(a->stats().num_objects, 2u);
  EXPECT_EQ(b->stats().used_bytes, a->stats().used_bytes);

  // Counts are node-wide: a ref dropped in b frees what a created.
  b->release_ref(x);
  EXPECT_FALSE(a->is_sealed(x));
  EXPECT_TRUE(CheckOk(*a));
  EXPECT_TRUE(CheckOk(*b));

  // Closing one view leaves the other working.
  a->close();
  EXPECT_TRUE(b->is_sealed(y));
  put(*b, b->new_id(), 100, 11);
  EXPECT_TRUE(CheckOk(*b));
}

TEST(StoreTest, AttachRejectsAnFdThatIsNotAStore) {
  auto r = Store::attach(-1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIOError);
}

// --- close --------------------------------------------------------------------------------------

TEST(StoreTest, AClosedStoreRefusesEverything) {
  auto s = make_store();
  ASSERT_NE(s, nullptr);
  ObjectID sealed = s->new_id();
  put(*s, sealed, 100, 1);
  ObjectID open = s->new_id();
  ASSERT_TRUE(s->create_object(open, 100).ok());
  EXPECT_FALSE(s->closed());
  s->close();
  EXPECT_TRUE(s->closed());
  EXPECT_EQ(s->fd(), -1);
  EXPECT_EQ(s->create_object(s->new_id(), 10).status().code(), StatusCode::kClosed);
  EXPECT_EQ(s->seal(open).code(), StatusCode::kClosed);
  EXPECT_EQ(s->pin(sealed).status().code(), StatusCode::kClosed);
  EXPECT_EQ(s->add_ref(sealed).code(), StatusCode::kClosed);
  EXPECT_EQ(s->check().code(), StatusCode::kClosed);
  EXPECT_FALSE(s->is_sealed(sealed));
  StoreStats st = s->stats();
  EXPECT_EQ(st.capacity, 0u);
  EXPECT_EQ(st.num_objects, 0u);
  // Releases after shutdown are harmless no-ops.
  s->unpin(sealed);
  s->release_ref(sealed);
  s->abort(open);
  s->close();
  EXPECT_TRUE(s->closed());
}

// --- large copies and the prefaulter -------------------------------------------------------------

TEST(StoreTest, CopyInOfALargeBufferIsExact) {
  const uint64_t n = 64 * kMiB;
  auto s = make_store(80 * kMiB);
  ASSERT_NE(s, nullptr);
  std::vector<uint64_t> src(n / 8);
  for (uint64_t i = 0; i < src.size(); ++i) src[i] = mix(i);
  const auto* bytes = reinterpret_cast<const uint8_t*>(src.data());

  ObjectID id = s->new_id();
  auto w = s->create_object(id, n);
  ASSERT_TRUE(w.ok()) << w.status().message();
  s->copy_in(*w, bytes, n);
  ASSERT_TRUE(s->seal(id).ok());
  auto v = s->pin(id);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->size, n);
  EXPECT_EQ(std::memcmp(v->data, bytes, n), 0);
  s->unpin(id);
  s->release_ref(id);

  // Again into the same (now populated) memory, at an odd offset and length.
  ObjectID id2 = s->new_id();
  auto w2 = s->create_object(id2, n);
  ASSERT_TRUE(w2.ok());
  EXPECT_EQ(*w2, *w);
  std::memset(*w2, 0, n);
  s->copy_in(*w2 + 3, bytes + 5, n - 1000);
  EXPECT_EQ((*w2)[0], 0);
  EXPECT_EQ(std::memcmp(*w2 + 3, bytes + 5, n - 1000), 0);
  EXPECT_EQ((*w2)[3 + n - 1000], 0) << "nothing written past the end";
  // Small copies take the single-thread path.
  s->copy_in(*w2, bytes, 77);
  EXPECT_EQ(std::memcmp(*w2, bytes, 77), 0);
  s->copy_in(*w2, bytes, 0);
  EXPECT_TRUE(CheckOk(*s));
}

// --- recovery from a process that died holding the lock ------------------------------------------

/// The allocator's used-byte counter, read without the lock (a racy peek for tests).
uint64_t peek_used_bytes(const Store& s) {
  const Segment& seg = s.segment();
  const auto* ctl = seg.at<StoreControl>(seg.header()->store_offset);
  return __atomic_load_n(&ctl->alloc.used_bytes, __ATOMIC_ACQUIRE);
}

/// Waits (up to 10 s) until a child's debug_die_holding_lock() has taken its block: it then
/// holds the lock and is parked in pause() forever.
bool wait_until_used_bytes_change(const Store& s, uint64_t from) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (peek_used_bytes(s) == from) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // The allocation's last store is the counter; give the child a moment to reach pause().
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return true;
}

/// What the parent holds when the child dies: a sealed object with a view pinned, one still
/// being written, and memory freed earlier (so the heap has holes).
struct Scene {
  ObjectID sealed, open;
  uint8_t* open_payload;
  StoreStats before;
};

Scene build_scene(Store& s) {
  Scene sc{};
  std::vector<ObjectID> tmp;
  for (int i = 0; i < 6; ++i) {
    tmp.push_back(s.new_id());
    put(s, tmp.back(), 20000 + i * 1000, static_cast<uint8_t>(i));
  }
  sc.sealed = s.new_id();
  put(s, sc.sealed, 300000, 42);
  EXPECT_TRUE(s.pin(sc.sealed).ok());
  sc.open = s.new_id();
  auto w = s.create_object(sc.open, 50000);
  EXPECT_TRUE(w.ok());
  sc.open_payload = w.ok() ? *w : nullptr;
  for (int i = 0; i < 6; i += 2) s.release_ref(tmp[i]);
  EXPECT_TRUE(CheckOk(s));
  sc.before = s.stats();
  return sc;
}

void expect_recovered(Store& s, const Scene& sc) {
  StoreStats st = s.stats();  // the first locker after the death repairs
  EXPECT_EQ(st.recoveries, 1u);
  EXPECT_EQ(st.used_bytes, sc.before.used_bytes) << "the child's 1 MiB block was freed";
  EXPECT_EQ(st.num_objects, sc.before.num_objects);
  EXPECT_TRUE(CheckOk(s));

  // Everything the table claims survived, bytes included.
  EXPECT_TRUE(s.is_sealed(sc.sealed));
  auto v = s.pin(sc.sealed);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(has_pattern(v->data, 300000, 42));
  s.unpin(sc.sealed);
  s.unpin(sc.sealed);
  std::memset(sc.open_payload, 1, 50000);
  ASSERT_TRUE(s.seal(sc.open).ok());

  // And the store works: the freed 1 MiB is reused without growing the heap.
  const uint64_t hw = s.stats().high_water;
  ObjectID id = s.new_id();
  put(s, id, kMiB, 7);
  EXPECT_EQ(s.stats().high_water, hw);
  auto v2 = s.pin(id);
  ASSERT_TRUE(v2.ok());
  EXPECT_TRUE(has_pattern(v2->data, kMiB, 7));
  s.unpin(id);
  s.release_ref(id);
  s.release_ref(sc.sealed);
  s.release_ref(sc.open);
  EXPECT_TRUE(CheckOk(s));
  EXPECT_EQ(s.stats().recoveries, 1u) << "recovery happens once";
}

TEST(StoreLockRecoveryTest, AForkedChildKilledHoldingTheLock) {
  auto s = make_store(16 * kMiB);
  ASSERT_NE(s, nullptr);
  Scene sc = build_scene(*s);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) s->debug_die_holding_lock();  // the inherited mapping; never returns
  ASSERT_TRUE(wait_until_used_bytes_change(*s, sc.before.used_bytes))
      << "the child never took the lock";
  EXPECT_EQ(peek_used_bytes(*s), sc.before.used_bytes + kMiB + 64);
  kill_and_reap(pid);
  expect_recovered(*s, sc);
}

TEST(StoreLockRecoveryTest, AChildThatAttachedItsOwnMappingKilledHoldingTheLock) {
  auto s = make_store(16 * kMiB);
  ASSERT_NE(s, nullptr);
  Scene sc = build_scene(*s);
  // The parent's second view recovers: the first locker after the death, whichever it is.
  auto other = Store::attach(dup(s->fd()));
  ASSERT_TRUE(other.ok());
  const int fd = s->fd();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto mine = Store::attach(dup(fd));
    if (!mine.ok()) _exit(3);
    (*mine)->debug_die_holding_lock();
  }
  ASSERT_TRUE(wait_until_used_bytes_change(*s, sc.before.used_bytes));
  kill_and_reap(pid);
  EXPECT_EQ((*other)->stats().recoveries, 1u);
  expect_recovered(*s, sc);
}

TEST(StoreLockRecoveryTest, AWaiterBlockedOnTheLockIsWokenAndRepairs) {
  auto s = make_store(16 * kMiB);
  ASSERT_NE(s, nullptr);
  Scene sc = build_scene(*s);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) s->debug_die_holding_lock();
  ASSERT_TRUE(wait_until_used_bytes_change(*s, sc.before.used_bytes));
  // A thread of the parent blocks in lock() behind the child...
  std::atomic<bool> done{false};
  StoreStats seen{};
  std::thread waiter([&] {
    seen = s->stats();
    done.store(true, std::memory_order_release);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(done.load(std::memory_order_acquire)) << "the lock is held by the child";
  // ...and the kernel wakes it, owner-died, when the child is killed.
  kill_and_reap(pid);
  waiter.join();
  EXPECT_TRUE(done.load());
  EXPECT_EQ(seen.recoveries, 1u);
  EXPECT_EQ(seen.used_bytes, sc.before.used_bytes);
  expect_recovered(*s, sc);
}

TEST(StoreLockRecoveryTest, RepeatedDeathsAreEachRecovered) {
  auto s = make_store(16 * kMiB);
  ASSERT_NE(s, nullptr);
  const uint64_t used = s->stats().used_bytes;
  for (uint64_t round = 1; round <= 3; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) s->debug_die_holding_lock();
    ASSERT_TRUE(wait_until_used_bytes_change(*s, used));
    kill_and_reap(pid);
    StoreStats st = s->stats();
    EXPECT_EQ(st.recoveries, round);
    EXPECT_EQ(st.used_bytes, used);
    EXPECT_EQ(st.high_water, kMiB + 64) << "each child's block is reused by the next";
    EXPECT_TRUE(CheckOk(*s));
  }
}

}  // namespace
}  // namespace ember
