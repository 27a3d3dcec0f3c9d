// Tests for ember::ObjectTable: insert/find/erase, duplicates, tombstones and their cleanup,
// probing across the wrap-around, the fill limit, recount/check, page counters and trim, and
// a fuzz against a std map.
#include "object_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

namespace ember {
namespace {

struct IdHash {
  size_t operator()(const ObjectID& id) const { return std::hash<uint64_t>()(id.hi * 31 + id.lo); }
};

::testing::AssertionResult CheckOk(const ObjectTable& t) {
  Status st = t.check();
  if (st.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "check(): " << st.message();
}

/// A table of `capacity` slots in ordinary zeroed memory (as the memfd would be).
class ObjectTableTest : public ::testing::Test {
 protected:
  void make(uint64_t capacity) {
    const uint64_t bytes = (ObjectTable::bytes(capacity) + 4095) / 4096 * 4096;  // aligned_alloc
    region_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)));
    std::memset(region_.get(), 0, bytes);
    st_ = TableState{};
    ObjectTable::init(&st_, capacity);
    t_ = std::make_unique<ObjectTable>(&st_, region_.get());
    slots_ = &t_->at(0);
  }
  void SetUp() override { make(16); }

  ObjectTable& t() { return *t_; }
  /// Inserts and expects success; returns the slot (-1 on failure).
  int64_t put(const ObjectID& id, uint64_t payload = 4096) {
    auto r = t().insert(id, 42, payload, 100);
    EXPECT_TRUE(r.ok()) << "insert(" << id.hi << ", " << id.lo << "): " << r.status().message();
    return r.ok() ? *r : -1;
  }
  SlotState state(uint64_t slot) { return slots_[slot].state; }

  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> region_;
  ObjectEntry* slots_ = nullptr;
  TableState st_{};
  std::unique_ptr<ObjectTable> t_;
};

TEST_F(ObjectTableTest, InsertFindErase) {
  EXPECT_EQ(t().capacity(), 16u);
  EXPECT_EQ(t().limit(), 14u);
  EXPECT_EQ(t().live(), 0u);
  EXPECT_EQ(t().find(ObjectID{1, 1}), -1);

  int64_t s = put(ObjectID{7, 3}, 8192);
  EXPECT_EQ(s, 3) << "an id's home slot is its sequence number modulo the capacity";
  const ObjectEntry& e = t().at(s);
  EXPECT_EQ(e.id, (ObjectID{7, 3}));
  EXPECT_EQ(e.state, SlotState::kCreated);
  EXPECT_EQ(e.owner_pid, 42);
  EXPECT_EQ(e.payload, 8192u);
  EXPECT_EQ(e.size, 100u);
  EXPECT_EQ(e.refs, 0);
  EXPECT_EQ(e.pins, 0);
  EXPECT_EQ(t().live(), 1u);
  EXPECT_EQ(t().find(ObjectID{7, 3}), 3);
  EXPECT_EQ(t().find(ObjectID{8, 3}), -1) << "the node tag is part of the id";
  EXPECT_EQ(t().find(ObjectID{7, 4}), -1);
  EXPECT_TRUE(CheckOk(t()));

  // Sealed entries are found too.
  t().at(s).state = SlotState::kSealed;
  EXPECT_EQ(t().find(ObjectID{7, 3}), 3);
  EXPECT_TRUE(CheckOk(t()));

  t().erase(s);
  EXPECT_EQ(t().find(ObjectID{7, 3}), -1);
  EXPECT_EQ(t().live(), 0u);
  EXPECT_EQ(state(3), SlotState::kEmpty) << "a lone tombstone before an empty slot is cleaned";
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, IdsIssuedInOrderFillSlotsInOrder) {
  for (uint64_t lo = 1; lo <= 10; ++lo) EXPECT_EQ(put(ObjectID{5, lo}), static_cast<int64_t>(lo));
  EXPECT_EQ(t().live(), 10u);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, DuplicateInsertIsAlreadyExists) {
  put(ObjectID{1, 5});
  auto r = t().insert(ObjectID{1, 5}, 1, 0, 0);
  EXPECT_EQ(r.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(t().live(), 1u);
  // Same sequence number under another node tag is another object: it probes to slot 6.
  EXPECT_EQ(put(ObjectID{2, 5}), 6);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, DuplicateIsFoundPastATombstone) {
  EXPECT_EQ(put(ObjectID{1, 1}), 1);
  EXPECT_EQ(put(ObjectID{1, 17}), 2);  // collides with 1, probes on
  t().erase(1);
  EXPECT_EQ(state(1), SlotState::kTombstone);
  // The tombstone at 1 could take the id, but the id is already live at 2.
  auto r = t().insert(ObjectID{1, 17}, 1, 0, 0);
  EXPECT_EQ(r.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(t().live(), 1u);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, TombstonesKeepProbeChainsAndAreReused) {
  const uint64_t cap = 16;
  EXPECT_EQ(put(ObjectID{1, 1}), 1);
  EXPECT_EQ(put(ObjectID{1, 1 + cap}), 2);
  EXPECT_EQ(put(ObjectID{1, 1 + 2 * cap}), 3);
  t().erase(1);
  EXPECT_EQ(state(1), SlotState::kTombstone) << "slot 2 still needs probes to pass 1";
  EXPECT_EQ(t().find(ObjectID{1, 1 + cap}), 2);
  EXPECT_EQ(t().find(ObjectID{1, 1 + 2 * cap}), 3);
  EXPECT_EQ(t().find(ObjectID{1, 1}), -1);
  EXPECT_TRUE(CheckOk(t()));
  // A new colliding id takes the first tombstone on its probe path.
  EXPECT_EQ(put(ObjectID{1, 1 + 3 * cap}), 1);
  EXPECT_EQ(t().find(ObjectID{1, 1 + 3 * cap}), 1);
  EXPECT_EQ(t().live(), 3u);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, TrailingTombstonesBecomeEmpty) {
  const uint64_t cap = 16;
  put(ObjectID{1, 1});
  put(ObjectID{1, 1 + cap});
  put(ObjectID{1, 1 + 2 * cap});
  t().erase(2);
  EXPECT_EQ(state(2), SlotState::kTombstone);
  t().erase(3);  // slot 4 is empty: 3 and the tombstone at 2 are no longer needed
  EXPECT_EQ(state(3), SlotState::kEmpty);
  EXPECT_EQ(state(2), SlotState::kEmpty);
  EXPECT_EQ(state(1), SlotState::kCreated) << "cleanup stops at a live slot";
  EXPECT_EQ(t().find(ObjectID{1, 1}), 1);
  t().erase(1);
  EXPECT_EQ(state(1), SlotState::kEmpty);
  for (uint64_t i = 0; i < cap; ++i) EXPECT_EQ(state(i), SlotState::kEmpty) << i;
  EXPECT_EQ(t().live(), 0u);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, CollisionsWrapAroundTheEnd) {
  make(8);
  // lo 7, 15, 23 all have home slot 7: they take 7, 0, 1.
  EXPECT_EQ(put(ObjectID{1, 7}), 7);
  EXPECT_EQ(put(ObjectID{1, 15}), 0);
  EXPECT_EQ(put(ObjectID{1, 23}), 1);
  EXPECT_EQ(put(ObjectID{1, 8}), 2) << "slot 0's own ids are pushed along too";
  EXPECT_EQ(t().find(ObjectID{1, 15}), 0);
  EXPECT_EQ(t().find(ObjectID{1, 23}), 1);
  EXPECT_EQ(t().find(ObjectID{1, 8}), 2);
  EXPECT_EQ(t().find(ObjectID{1, 31}), -1);
  EXPECT_TRUE(CheckOk(t()));

  t().erase(7);
  EXPECT_EQ(state(7), SlotState::kTombstone);
  EXPECT_EQ(t().find(ObjectID{1, 23}), 1) << "probes continue past the tombstone and the end";
  t().erase(2);
  EXPECT_EQ(state(2), SlotState::kEmpty);
  t().erase(1);
  EXPECT_EQ(state(1), SlotState::kEmpty);
  // Erasing slot 0 cleans it and then, backwards across the wrap, the tombstone at 7.
  t().erase(0);
  EXPECT_EQ(state(0), SlotState::kEmpty);
  EXPECT_EQ(state(7), SlotState::kEmpty);
  EXPECT_EQ(t().live(), 0u);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, TableFullAtLimit) {
  for (uint64_t lo = 0; lo < t().limit(); ++lo) put(ObjectID{1, lo});
  EXPECT_EQ(t().live(), 14u);
  auto r = t().insert(ObjectID{1, 100}, 1, 0, 0);
  EXPECT_EQ(r.status().code(), StatusCode::kTableFull);
  EXPECT_NE(r.status().message().find("14"), std::string::npos) << r.status().message();
  EXPECT_EQ(t().live(), 14u);
  EXPECT_EQ(t().find(ObjectID{1, 100}), -1);
  // A duplicate at the limit: full is reported first (the table is not even probed).
  EXPECT_EQ(t().insert(ObjectID{1, 3}, 1, 0, 0).status().code(), StatusCode::kTableFull);
  EXPECT_TRUE(CheckOk(t()));

  t().erase(t().find(ObjectID{1, 5}));
  EXPECT_EQ(put(ObjectID{1, 100}), 5) << "100 % 16 = 4 is taken; the tombstone at 5 is reused";
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, NoEmptySlotLeftStillTerminates) {
  make(8);  // limit 7
  for (uint64_t k = 0; k < 7; ++k) put(ObjectID{1, 8 * k});  // all home 0: slots 0..6
  t().erase(0);  // tombstone: slot 1's entry probes through it
  EXPECT_EQ(put(ObjectID{1, 7}), 7);
  t().erase(1);  // tombstone: slot 2's entry probes through it
  EXPECT_EQ(state(0), SlotState::kTombstone);
  EXPECT_EQ(state(1), SlotState::kTombstone);
  // Slots: T T L L L L L L: no EMPTY slot anywhere. find and insert must still stop.
  EXPECT_EQ(t().find(ObjectID{1, 9}), -1);
  EXPECT_EQ(t().find(ObjectID{2, 2}), -1);
  EXPECT_EQ(put(ObjectID{2, 2}), 0) << "probes 2..7, then takes the first tombstone";
  EXPECT_EQ(t().find(ObjectID{2, 2}), 0);
  EXPECT_EQ(t().live(), 7u);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, IdsInOrderLeaveNoTombstones) {
  // Without collisions no slot is on another entry's probe path: erasing the oldest of a run
  // of live entries empties its slot at once (a tombstone there would keep its page resident).
  for (uint64_t lo = 1; lo <= 5; ++lo) put(ObjectID{1, lo});
  t().erase(1);
  EXPECT_EQ(state(1), SlotState::kEmpty);
  t().erase(3);
  EXPECT_EQ(state(3), SlotState::kEmpty);
  EXPECT_EQ(t().find(ObjectID{1, 4}), 4);
  EXPECT_TRUE(CheckOk(t()));
  // A collision raises the displacement; a slot an entry probes through stays a tombstone.
  EXPECT_EQ(put(ObjectID{1, 2 + 16}), 3);
  EXPECT_EQ(st_.max_displacement, 1u);
  t().erase(2);
  EXPECT_EQ(state(2), SlotState::kTombstone) << "the entry at 3 (home 2) probes through 2";
  t().erase(4);
  EXPECT_EQ(state(4), SlotState::kEmpty) << "5's home is 5: nobody probes through 4";
  EXPECT_EQ(t().find(ObjectID{1, 2 + 16}), 3);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, EmptyPagesAreNeverReadAndAreTrimmed) {
  const uint64_t per = ObjectTable::kSlotsPerPage;
  make(8 * per);
  EXPECT_EQ(t().num_pages(), 8u);
  // Ids 0 .. 3 pages: pages 0-2 counted; the rest never touched.
  for (uint64_t lo = 0; lo < 3 * per; ++lo) put(ObjectID{1, lo});
  EXPECT_EQ(t().count(0), per);
  EXPECT_EQ(t().count(3), 0u);
  // A page counted empty is not read: scribble on it and find() still says "absent" there.
  slots_[5 * per].state = SlotState::kSealed;
  slots_[5 * per].id = ObjectID{1, 5 * per};
  EXPECT_EQ(t().find(ObjectID{1, 5 * per}), -1);
  slots_[5 * per] = ObjectEntry{};
  int visited = 0;
  t().for_each_live([&](int64_t, ObjectEntry&) { ++visited; });
  EXPECT_EQ(visited, static_cast<int>(3 * per));

  // Free pages 0 and 1 (and half of 2): the trim punches exactly pages 0-1, in one run.
  for (uint64_t lo = 0; lo < 2 * per + per / 2; ++lo) t().erase(t().find(ObjectID{1, lo}));
  EXPECT_EQ(t().count(0), 0u);
  EXPECT_EQ(t().count(2), per / 2);
  std::vector<std::pair<uint64_t, uint64_t>> punched;
  uint64_t pages = t().trim(100, [&](uint64_t first, uint64_t n) { punched.push_back({first, n}); });
  EXPECT_EQ(pages, 2u);
  ASSERT_EQ(punched.size(), 1u);
  EXPECT_EQ(punched[0], (std::pair<uint64_t, uint64_t>{0, 2 * per}));
  EXPECT_EQ(t().trim(100, [&](uint64_t, uint64_t) { ADD_FAILURE() << "punched twice"; }), 0u)
      << "a punched page is not resident until it is used again";
  // Reuse after a wrap: ids of the next round land in the punched pages again.
  EXPECT_EQ(put(ObjectID{1, 8 * per}), 0);
  EXPECT_EQ(t().count(0), 1u);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, RecountRepairsPageCountersAndDisplacement) {
  make(2 * ObjectTable::kSlotsPerPage);
  put(ObjectID{1, 3});
  put(ObjectID{1, 3 + 128});  // displaced by 1
  st_.max_displacement = 0;   // as if a process died between the write and the update
  EXPECT_FALSE(t().check().ok());
  t().recount();
  EXPECT_EQ(st_.max_displacement, 1u);
  EXPECT_TRUE(CheckOk(t()));
}

TEST_F(ObjectTableTest, RecountAndCheck) {
  for (uint64_t lo = 1; lo <= 5; ++lo) put(ObjectID{3, lo});
  t().at(2).state = SlotState::kSealed;
  t().erase(4);
  EXPECT_TRUE(CheckOk(t()));

  st_.live = 1000;  // a process died between the state store and the counter update
  EXPECT_FALSE(t().check().ok());
  t().recount();
  EXPECT_EQ(t().live(), 4u);
  EXPECT_TRUE(CheckOk(t()));

  t().at(3).refs = -1;
  EXPECT_FALSE(t().check().ok());
  t().at(3).refs = 0;
  t().at(3).pins = -2;
  EXPECT_FALSE(t().check().ok());
  t().at(3).pins = 0;
  EXPECT_TRUE(CheckOk(t()));

  // An entry beyond an empty slot from its home cannot be reached by probing.
  slots_[9] = ObjectEntry{};
  slots_[9].id = ObjectID{3, 7};
  slots_[9].state = SlotState::kCreated;
  t().recount();
  EXPECT_FALSE(t().check().ok());
  slots_[9].state = SlotState::kEmpty;
  t().recount();
  EXPECT_TRUE(CheckOk(t()));

  // The same id twice: the second copy is unreachable.
  slots_[6] = t().at(5);
  t().recount();
  EXPECT_FALSE(t().check().ok());
}

TEST_F(ObjectTableTest, RandomOperationsAgainstAnUnorderedMap) {
  make(256);
  std::mt19937_64 rng(77);
  std::unordered_map<ObjectID, uint64_t, IdHash> model;  // id -> payload
  std::vector<ObjectID> keys;                             // ids ever inserted (some erased)
  uint64_t fulls = 0, dups = 0;
  // Few node tags and sequence numbers that wrap the table several times: many collisions.
  auto random_id = [&]() { return ObjectID{1 + rng() % 2, rng() % 1024}; };
  for (int op = 0; op < 60000; ++op) {
    uint64_t r = rng() % 100;
    if (r < 50) {
      ObjectID id = random_id();
      uint64_t payload = rng();
      auto res = t().insert(id, 1, payload, 0);
      // At the limit even a duplicate is reported as full: the limit is checked first.
      if (model.size() >= t().limit()) {
        ASSERT_EQ(res.status().code(), StatusCode::kTableFull) << "op " << op;
        ++fulls;
      } else if (model.count(id) != 0) {
        ASSERT_EQ(res.status().code(), StatusCode::kAlreadyExists) << "op " << op;
        ++dups;
      } else {
        ASSERT_TRUE(res.ok()) << "op " << op << ": " << res.status().message();
        ASSERT_EQ(t().at(*res).id, id);
        model[id] = payload;
        keys.push_back(id);
      }
    } else if (r < 85 && !keys.empty()) {
      size_t k = rng() % keys.size();
      ObjectID id = keys[k];
      keys[k] = keys.back();
      keys.pop_back();
      int64_t slot = t().find(id);
      if (model.count(id) == 0) {
        ASSERT_EQ(slot, -1);
        continue;
      }
      ASSERT_GE(slot, 0) << "op " << op;
      t().erase(slot);
      model.erase(id);
    } else {
      ObjectID id = random_id();
      int64_t slot = t().find(id);
      auto it = model.find(id);
      if (it == model.end()) {
        ASSERT_EQ(slot, -1) << "op " << op;
      } else {
        ASSERT_GE(slot, 0) << "op " << op;
        ASSERT_EQ(t().at(slot).payload, it->second);
      }
    }
    ASSERT_EQ(t().live(), model.size());
    if (op % 500 == 0) {
      ASSERT_TRUE(CheckOk(t())) << "op " << op;
      for (const auto& [id, payload] : model) {
        int64_t slot = t().find(id);
        ASSERT_GE(slot, 0);
        ASSERT_EQ(t().at(slot).payload, payload);
      }
    }
  }
  EXPECT_TRUE(CheckOk(t()));
  EXPECT_GT(fulls, 0u) << "the fuzz should reach the limit";
  EXPECT_GT(dups, 0u);
}

}  // namespace
}  // namespace ember
