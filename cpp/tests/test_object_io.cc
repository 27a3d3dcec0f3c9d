// Tests for object_io: an object written in parts reads back the same, buffers aligned; nested
// refs are held by the object; an unfinished writer leaves nothing; failures from the core, and
// failures nobody read kept for the driver to report.
#include "object_io.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "store_test_util.h"

namespace ember {
namespace {

using testing_util::kMiB;

int32_t refs_of(Store& s, const ObjectID& id) {
  for (const Store::ObjectInfo& o : s.list_objects()) {
    if (o.id == id) return o.refs;
  }
  return -1;  // absent
}

TEST(ObjectIO, WrittenInPartsReadsBackTheSame) {
  auto store = testing_util::small_store();
  const std::string stream = "a pickle stream";
  std::vector<uint8_t> a(1000), b(3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 13);
  b = {7, 8, 9};
  ObjectID id = store->new_id();
  auto w = ObjectWriter::begin(*store, id, stream, {a.size(), b.size()}, {});
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->num_buffers(), 2u);
  w->copy_buffer(0, a.data());
  w->copy_buffer(1, b.data());
  // Not visible before finish: a reader sees it as not ready.
  EXPECT_EQ(read_object(*store, id).status().code(), StatusCode::kNotReady);
  ASSERT_TRUE(w->finish().ok());

  auto parts = read_object(*store, id);
  ASSERT_TRUE(parts.ok()) << parts.status().message();
  EXPECT_EQ(parts->header.flags, 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(parts->view.data + parts->stream_at),
                        parts->header.stream_len),
            stream);
  ASSERT_EQ(parts->buffers.size(), 2u);
  for (const BufferSpan& sp : parts->buffers) EXPECT_EQ(sp.offset % 64, 0u) << "numpy alignment";
  EXPECT_EQ(std::vector<uint8_t>(parts->view.data + parts->buffers[0].offset,
                                 parts->view.data + parts->buffers[0].offset + a.size()),
            a);
  EXPECT_EQ(parts->buffers[1].len, 3u);
  EXPECT_EQ(parts->view.data[parts->buffers[1].offset + 2], 9);
  store->unpin(id);
  EXPECT_TRUE(store->check().ok());
}

TEST(ObjectIO, AnUnfinishedWriterLeavesNothing) {
  auto store = testing_util::small_store();
  ObjectID id = store->new_id();
  {
    auto w = ObjectWriter::begin(*store, id, "x", {128}, {});
    ASSERT_TRUE(w.ok());
    EXPECT_TRUE(store->contains(id));
  }  // an exception between begin and finish ends up here
  EXPECT_FALSE(store->contains(id));
  EXPECT_EQ(store->stats().num_objects, 0u);
}

TEST(ObjectIO, AMovedWriterAbortsOnce) {
  auto store = testing_util::small_store();
  ObjectID id = store->new_id();
  auto w = ObjectWriter::begin(*store, id, "x", {}, {});
  ASSERT_TRUE(w.ok());
  ObjectWriter moved(std::move(*w));
  ASSERT_TRUE(moved.finish().ok());
  EXPECT_TRUE(store->is_sealed(id));  // the moved-from writer did not abort it
}

TEST(ObjectIO, TheObjectHoldsItsNestedRefs) {
  auto store = testing_util::small_store();
  ObjectID inner = store->new_id();
  ASSERT_TRUE(ObjectWriter::begin(*store, inner, "inner", {}, {})->finish().ok());
  ObjectID outer = store->new_id();
  ASSERT_TRUE(ObjectWriter::begin(*store, outer, "outer", {}, {inner})->finish().ok());
  EXPECT_EQ(refs_of(*store, inner), 2);  // its own count and the container's
  store->release_ref(inner);
  EXPECT_TRUE(store->is_sealed(inner)) << "the container keeps it";
  store->release_ref(outer);
  EXPECT_EQ(refs_of(*store, inner), -1) << "freed with its container";
}

TEST(ObjectIO, AFailureFromTheCoreFulfilsAPromise) {
  auto store = testing_util::small_store();
  ObjectID id = store->new_id();
  ASSERT_TRUE(store->create_pending(id, 1).ok());
  ASSERT_TRUE(write_error_message(*store, id, ErrorKind::kActorDied, "it died"));
  auto parts = read_object(*store, id);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->header.flags, kFlagError | kFlagRawMessage);
  EXPECT_EQ(parts->header.error_kind, static_cast<uint16_t>(ErrorKind::kActorDied));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(parts->view.data + parts->stream_at),
                        parts->header.stream_len),
            "it died");
  store->unpin(id);
}

ObjectID failure(Store& s, const char* message) {
  ObjectID id = s.new_id();
  EXPECT_TRUE(write_error_message(s, id, ErrorKind::kWorkerCrashed, message));
  return id;
}

void read(Store& s, const ObjectID& id) {
  ASSERT_TRUE(read_object(s, id).ok());
  s.unpin(id);
}

TEST(ObjectIO, AFailureFreedUnreadIsKeptForTheDriverOnce) {
  auto store = testing_util::small_store();
  ObjectID was_read = failure(*store, "read"), unread = failure(*store, "unread");
  ObjectID waited = failure(*store, "waited");
  ObjectID cancelled = store->new_id();  // a failure the program asked for
  ASSERT_TRUE(write_error_message(*store, cancelled, ErrorKind::kTaskCancelled, "cancelled"));
  ObjectID crashed = store->new_id();
  ASSERT_TRUE(write_error_message(*store, crashed, ErrorKind::kWorkerCrashed, "crashed"));
  ObjectID value = store->new_id();
  ASSERT_TRUE(ObjectWriter::begin(*store, value, "a value", {}, {})->finish().ok());
  read(*store, was_read);
  bool ready = false;
  ASSERT_EQ(store->wait(&waited, 1, 1, 0, &ready), 1u);
  for (const ObjectID& id : {was_read, unread, waited, cancelled, crashed, value}) {
    store->release_ref(id);
  }
  EXPECT_EQ(refs_of(*store, was_read), -1) << "a failure someone read is freed";
  EXPECT_EQ(refs_of(*store, waited), -1) << "so is one a wait saw ready";
  EXPECT_EQ(refs_of(*store, cancelled), -1) << "and a cancel";
  EXPECT_EQ(refs_of(*store, value), -1);
  EXPECT_EQ(refs_of(*store, unread), 1) << "kept, with the list's hold";
  EXPECT_EQ(refs_of(*store, crashed), 1) << "a crash is reported too";

  uint64_t dropped = 99;
  EXPECT_EQ(store->take_unreported(0, &dropped), (std::vector<ObjectID>{unread, crashed}));
  EXPECT_EQ(dropped, 0u);
  read(*store, unread);  // the driver reads it, then lets its ref go: freed, never listed again
  store->release_ref(unread);
  store->release_ref(crashed);
  EXPECT_EQ(refs_of(*store, unread), -1);
  EXPECT_TRUE(store->take_unreported(0, &dropped).empty());
  EXPECT_TRUE(testing_util::CheckOk(*store));
}

TEST(ObjectIO, AFailureSealedAfterItsLastRefWentIsKept) {
  auto store = testing_util::small_store();
  ObjectID id = store->new_id();
  ASSERT_TRUE(store->create_pending(id, 1).ok());  // a task's return, dropped before it ended
  store->release_ref(id);
  ASSERT_TRUE(write_error_message(*store, id, ErrorKind::kWorkerCrashed, "late"));
  uint64_t dropped = 0;
  EXPECT_EQ(store->take_unreported(0, &dropped), std::vector<ObjectID>{id});
  store->release_ref(id);
  EXPECT_EQ(refs_of(*store, id), -1) << "the taker's release frees it, read or not";
}

TEST(ObjectIO, TheListOfUnreportedFailuresIsBoundedAndCountsTheRest) {
  auto store = testing_util::small_store();
  for (uint32_t i = 0; i < kMaxUnreported + 3; ++i) store->release_ref(failure(*store, "x"));
  uint64_t dropped = 0;
  std::vector<ObjectID> ids = store->take_unreported(0, &dropped);
  EXPECT_EQ(ids.size(), kMaxUnreported);
  EXPECT_EQ(dropped, 3u) << "freed at once, and counted for the driver to say so";
  for (const ObjectID& id : ids) store->release_ref(id);
  EXPECT_EQ(store->stats().num_objects, 0u);
}

TEST(ObjectIO, ATakerWaitsForAFailureAndCloseWakesIt) {
  auto store = testing_util::small_store();
  std::vector<ObjectID> got;
  uint64_t dropped = 0;
  std::thread taker([&] { got = store->take_unreported(int64_t{10'000'000'000}, &dropped); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ObjectID id = failure(*store, "x");
  store->release_ref(id);
  taker.join();  // woken by the addition, long before its 10 s
  EXPECT_EQ(got, std::vector<ObjectID>{id});

  const auto start = std::chrono::steady_clock::now();
  std::thread closed_on([&] { got = store->take_unreported(int64_t{10'000'000'000}, &dropped); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  store->close();
  closed_on.join();
  EXPECT_TRUE(got.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(ObjectIO, AFullStoreIsAnErrorAndNothingIsLeft) {
  auto store = testing_util::small_store();
  ObjectID id = store->new_id();
  auto w = ObjectWriter::begin(*store, id, "x", {64 * kMiB}, {});
  EXPECT_EQ(w.status().code(), StatusCode::kStoreFull);
  EXPECT_FALSE(store->contains(id));
  EXPECT_FALSE(write_error_message(*store, store->new_id(), ErrorKind::kObjectLost,
                                   std::string(64 * kMiB, 'x')));
}

TEST(ObjectIO, BytesNotInTheFormatAreRejected) {
  auto store = testing_util::small_store();
  ObjectID id = store->new_id();
  auto raw = store->create_object(id, 64);
  ASSERT_TRUE(raw.ok());
  std::memset(*raw, 0, 64);
  ASSERT_TRUE(store->seal(id).ok());
  EXPECT_EQ(read_object(*store, id).status().code(), StatusCode::kInvalid);
  store->release_ref(id);  // and it was unpinned: it can be freed
  EXPECT_FALSE(store->contains(id));
}

}  // namespace
}  // namespace ember
