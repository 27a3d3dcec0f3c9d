// Ledger: per-process holds are counted, cleared at zero, drained once, and bounded.
#include "ledger.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

namespace ember {
namespace {

class LedgerTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kCapacity = 64;
  std::vector<uint8_t> mem_ = std::vector<uint8_t>(Ledger::bytes(kCapacity), 0);
  Ledger ledger_{mem_.data(), kCapacity};

  std::map<uint64_t, std::pair<int, int>> drained() {
    std::map<uint64_t, std::pair<int, int>> out;
    ledger_.drain([&](const ObjectID& id, int32_t refs, int32_t pins) {
      out[id.lo] = {refs, pins};
    });
    return out;
  }
};

TEST_F(LedgerTest, CountsRefsAndPinsPerObject) {
  ledger_.add({1, 10}, 1, 0);
  ledger_.add({1, 10}, 1, 0);
  ledger_.add({1, 10}, 0, 1);
  ledger_.add({1, 11}, 1, 0);
  EXPECT_EQ(ledger_.live(), 2u);
  auto out = drained();
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(out[10], std::make_pair(2, 1));
  EXPECT_EQ(out[11], std::make_pair(1, 0));
  EXPECT_EQ(ledger_.live(), 0u);
  EXPECT_TRUE(drained().empty());  // drained once
}

TEST_F(LedgerTest, AnEntryAtZeroDisappears) {
  ledger_.add({1, 5}, 1, 1);
  ledger_.add({1, 5}, -1, 0);
  ledger_.add({1, 5}, 0, -1);
  EXPECT_EQ(ledger_.live(), 0u);
  EXPECT_TRUE(drained().empty());
  ledger_.add({1, 5}, -1, 0);  // a release never recorded (overflow) is ignored
  EXPECT_TRUE(drained().empty());
}

TEST_F(LedgerTest, CollidingIdsKeepTheirOwnCounts) {
  for (uint64_t k = 0; k < 5; ++k) ledger_.add({1, 3 + k * kCapacity}, 1, 0);  // one home
  ledger_.add({1, 3 + kCapacity}, -1, 0);  // a tombstone in the middle of the chain
  ledger_.add({1, 3 + 4 * kCapacity}, 1, 0);
  auto out = drained();
  EXPECT_EQ(out.size(), 4u);
  EXPECT_EQ(out[3 + 4 * kCapacity], std::make_pair(2, 0));
  EXPECT_EQ(out.count(3 + kCapacity), 0u);
}

TEST_F(LedgerTest, AFullLedgerDropsNewEntriesAndSaysSo) {
  for (uint64_t k = 0; k < kCapacity; ++k) ledger_.add({1, k}, 1, 0);
  EXPECT_TRUE(ledger_.overflowed());
  EXPECT_EQ(ledger_.live(), kCapacity - kCapacity / 8);
}

TEST_F(LedgerTest, MatchesAModelUnderRandomTraffic) {
  std::mt19937_64 rng(7);
  std::map<uint64_t, std::pair<int, int>> model;
  for (int step = 0; step < 20000; ++step) {
    uint64_t id = rng() % 40;
    auto& m = model[id];
    bool pin = rng() % 2;
    bool add = rng() % 2 || (pin ? m.second == 0 : m.first == 0);
    int d = add ? 1 : -1;
    ledger_.add({1, id}, pin ? 0 : d, pin ? d : 0);
    (pin ? m.second : m.first) += d;
  }
  auto out = drained();
  for (auto& [id, m] : model) {
    if (m.first == 0 && m.second == 0) {
      EXPECT_EQ(out.count(id), 0u);
    } else {
      EXPECT_EQ(out[id], m) << id;
    }
  }
}

}  // namespace
}  // namespace ember
