// Tests for ember::Allocator: alignment, splitting and coalescing, warm-first reuse, the
// wilderness, kStoreFull, largest_free, a shadow-model fuzz, and rebuild() after torn updates.
#include "allocator.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace ember {
namespace {

constexpr uint64_t kBegin = 4096;  // offset 0 is never a block: the heap starts past it

uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/// The block a fresh (wilderness) allocation of `payload` bytes takes, header included.
uint64_t block_of(uint64_t payload) {
  return std::max(kMinBlock, round_up(payload, kAlign) + kAlign);
}

::testing::AssertionResult CheckOk(const Allocator& a) {
  Status st = a.check();
  if (st.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "check(): " << st.message();
}

/// A heap of `bytes` bytes mapped by this test, at offsets [kBegin, kBegin + bytes) from a
/// page-aligned base, plus the allocator state in ordinary memory.
class AllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override { make(1 << 20); }
  void TearDown() override { unmap(); }

  void make(uint64_t bytes) {
    unmap();
    map_size_ = kBegin + bytes;
    void* p = mmap(nullptr, map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    base_ = static_cast<uint8_t*>(p);
    st_ = std::make_unique<AllocatorState>();
    Allocator::init(st_.get(), kBegin, map_size_);
    a_ = std::make_unique<Allocator>(base_, st_.get());
  }
  void unmap() {
    if (base_ != nullptr) munmap(base_, map_size_);
    base_ = nullptr;
  }

  Allocator& a() { return *a_; }
  AllocatorState& st() { return *st_; }
  BlockHeader* hdr(uint64_t payload) {
    return reinterpret_cast<BlockHeader*>(base_ + payload - kAlign);
  }
  uint64_t capacity() const { return st_->heap_end - st_->heap_begin; }

  /// Allocates and expects success; returns the payload offset (0 on failure).
  uint64_t alloc(uint64_t size, uint64_t tag = 7) {
    auto r = a().allocate(size, 1, tag);
    EXPECT_TRUE(r.ok()) << "allocate(" << size << "): " << r.status().message();
    return r.ok() ? *r : 0;
  }

  uint8_t* base_ = nullptr;
  uint64_t map_size_ = 0;
  std::unique_ptr<AllocatorState> st_;
  std::unique_ptr<Allocator> a_;
};

// --- layout --------------------------------------------------------------------------------

TEST_F(AllocatorTest, InitRoundsTheHeapInwardToTheAlignment) {
  AllocatorState s;
  Allocator::init(&s, 100, 100000);
  EXPECT_EQ(s.heap_begin, 128u);
  EXPECT_EQ(s.heap_end, 99968u);
  EXPECT_EQ(s.top.load(), s.heap_begin);
  EXPECT_EQ(s.last_block, 0u);
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.fl_bitmap, 0u);

  EXPECT_TRUE(CheckOk(a()));
  AllocatorStats stats = a().stats();
  EXPECT_EQ(stats.capacity, uint64_t{1} << 20);
  EXPECT_EQ(stats.used_bytes, 0u);
  EXPECT_EQ(stats.used_blocks, 0u);
  EXPECT_EQ(stats.high_water, 0u);
  EXPECT_EQ(stats.largest_free, capacity() - kAlign);
}

TEST_F(AllocatorTest, PayloadsAreAlignedSizedAndTileTheHeap) {
  const uint64_t sizes[] = {0, 1, 63, 64, 65, 100, 127, 128, 1000, 1023, 1024, 1025,
                            2048, 4096, 4097, 65536, 100000, 300000};
  uint64_t expect_payload = kBegin + kAlign;
  uint64_t used = 0;
  uint64_t n = 0;
  for (uint64_t size : sizes) {
    uint64_t p = alloc(size, 1000 + size);
    ASSERT_NE(p, 0u);
    EXPECT_EQ(p % kAlign, 0u) << size;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(base_ + p) % kAlign, 0u) << size;
    EXPECT_GE(a().usable_size(p), size);
    // Fresh blocks from the wilderness are exactly the rounded size: nothing wasted.
    EXPECT_EQ(a().usable_size(p), block_of(size) - kAlign) << size;
    EXPECT_EQ(p, expect_payload) << "blocks tile the heap in order";
    const BlockHeader* h = hdr(p);
    EXPECT_EQ(h->magic, kBlockMagic);
    EXPECT_EQ(h->free, 0u);
    EXPECT_EQ(h->tag_hi, 1u);
    EXPECT_EQ(h->tag_lo, 1000 + size);
    expect_payload += block_of(size);
    used += block_of(size);
    ++n;
    ASSERT_TRUE(CheckOk(a()));
  }
  AllocatorStats s = a().stats();
  EXPECT_EQ(s.used_bytes, used);
  EXPECT_EQ(s.used_blocks, n);
  EXPECT_EQ(s.high_water, used);
  EXPECT_EQ(st().top.load(), kBegin + used);
  EXPECT_EQ(st().last_block, expect_payload - block_of(sizes[std::size(sizes) - 1]) - kAlign);
}

// --- splitting and coalescing ---------------------------------------------------------------

TEST_F(AllocatorTest, SplitsAFreeBlockAndMergesItBack) {
  uint64_t big = alloc(65536);
  uint64_t guard = alloc(64);
  ASSERT_NE(guard, 0u);
  a().free(big);
  ASSERT_TRUE(CheckOk(a()));
  const uint64_t hw = a().stats().high_water;

  uint64_t s1 = alloc(1000);
  EXPECT_EQ(s1, big) << "the free block is split, its front handed out";
  ASSERT_TRUE(CheckOk(a()));
  uint64_t s2 = alloc(1000);
  EXPECT_EQ(s2, big + block_of(1000)) << "the remainder is the next free block";
  ASSERT_TRUE(CheckOk(a()));
  EXPECT_EQ(a().stats().high_water, hw) << "the wilderness was not touched";

  a().free(s1);
  ASSERT_TRUE(CheckOk(a()));
  a().free(s2);  // merges with s1 before it and the remainder after it
  ASSERT_TRUE(CheckOk(a()));
  EXPECT_EQ(alloc(65536), big) << "the three pieces coalesced into the original block";
  EXPECT_EQ(a().stats().high_water, hw);
  ASSERT_TRUE(CheckOk(a()));
}

TEST_F(AllocatorTest, TooSmallARemainderIsNotSplitOff) {
  uint64_t x = alloc(1000);  // block 1088
  uint64_t guard = alloc(64);
  ASSERT_NE(guard, 0u);
  a().free(x);
  // 1000 - 64 leaves 64 bytes of the block: less than a minimum block, so it stays inside.
  uint64_t y = alloc(1000 - 64);
  EXPECT_EQ(y, x);
  EXPECT_EQ(a().usable_size(y), block_of(1000) - kAlign);
  EXPECT_TRUE(CheckOk(a()));
}

TEST_F(AllocatorTest, FreeingInEveryOrderCoalescesToOneBlock) {
  const std::vector<uint64_t> sizes = {100, 5000, 64, 70000, 300};
  std::vector<int> order(sizes.size());
  std::iota(order.begin(), order.end(), 0);
  int perms = 0;
  do {
    Allocator::init(&st(), kBegin, map_size_);
    std::vector<uint64_t> p;
    for (uint64_t s : sizes) p.push_back(alloc(s));
    const uint64_t hw = a().stats().high_water;
    for (int i : order) {
      a().free(p[i]);
      ASSERT_TRUE(CheckOk(a())) << "permutation " << perms;
    }
    AllocatorStats s = a().stats();
    EXPECT_EQ(s.used_bytes, 0u);
    EXPECT_EQ(s.used_blocks, 0u);
    EXPECT_EQ(s.largest_free, capacity() - kAlign);
    // One free block covers everything ever handed out: an allocation of exactly that size
    // lands at the start of the heap without growing it.
    EXPECT_EQ(alloc(hw - kAlign), kBegin + kAlign) << "permutation " << perms;
    EXPECT_EQ(a().stats().high_water, hw);
    ASSERT_TRUE(CheckOk(a()));
    ++perms;
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(perms, 120);
}

// --- warm first -------------------------------------------------------------------------------

TEST_F(AllocatorTest, AFreedBlockIsReusedForTheSameSize) {
  // Sizes on and off the size-class boundaries; 2048 and 1 MiB payloads make blocks just past
  // a boundary (2112, 1 MiB + 64), which good-fit rounding alone would skip.
  const uint64_t sizes[] = {0,     64,    1000,   1024,   2048,    3000,     4096,
                            10000, 65536, 100000, 250000, 1 << 20, (1 << 20) + 1};
  make(4 << 20);
  for (uint64_t size : sizes) {
    Allocator::init(&st(), kBegin, map_size_);
    uint64_t x = alloc(size);
    uint64_t guard = alloc(64);  // so x is not the last block (no wilderness extension)
    ASSERT_NE(guard, 0u);
    a().free(x);
    const uint64_t hw = a().stats().high_water;
    EXPECT_EQ(alloc(size), x) << "size " << size;
    EXPECT_EQ(a().stats().high_water, hw) << "size " << size << " grew into the wilderness";
    ASSERT_TRUE(CheckOk(a()));
  }
}

TEST_F(AllocatorTest, TheWildernessIsCutOnlyWhenNoFreeBlockFits) {
  uint64_t hole = alloc(256 << 10);
  uint64_t guard = alloc(64);
  ASSERT_NE(guard, 0u);
  a().free(hole);
  const uint64_t hw = a().stats().high_water;
  uint64_t remaining = block_of(256 << 10);  // the free hole, all of it
  std::mt19937_64 rng(11);
  for (int i = 0; i < 1000; ++i) {
    uint64_t size = 100 + rng() % 20000;
    uint64_t want = block_of(size);
    if (want > remaining) break;
    uint64_t p = alloc(size);
    EXPECT_EQ(a().stats().high_water, hw) << "allocation " << i << " of " << size
                                          << " with a free block of " << remaining;
    EXPECT_EQ(p, hole + (block_of(256 << 10) - remaining));
    remaining = remaining - want < kMinBlock ? 0 : remaining - want;
    ASSERT_TRUE(CheckOk(a()));
  }
}

// --- the wilderness ---------------------------------------------------------------------------

TEST_F(AllocatorTest, AFreeLastBlockIsExtendedIntoTheWilderness) {
  uint64_t x = alloc(1000);
  uint64_t last = alloc(1000);
  ASSERT_NE(x, 0u);
  a().free(last);
  ASSERT_TRUE(CheckOk(a()));
  const uint64_t hw = a().stats().high_water;
  uint64_t big = alloc(4000);
  EXPECT_EQ(big, last) << "the free last block is grown in place";
  EXPECT_EQ(a().stats().high_water, hw + block_of(4000) - block_of(1000));
  EXPECT_EQ(st().last_block, last - kAlign);
  ASSERT_TRUE(CheckOk(a()));
}

TEST_F(AllocatorTest, AFreeLastBlockPlusTheWildernessFillsTheHeapExactly) {
  make(64 << 10);
  uint64_t x = alloc(1024 - kAlign);  // a 1024-byte block
  uint64_t last = alloc(4096 - kAlign);
  ASSERT_NE(x, 0u);
  a().free(last);
  // Neither the free block (4 KiB) nor the wilderness (59 KiB) alone holds this; both do.
  const uint64_t rest = capacity() - 1024;
  EXPECT_EQ(a().largest_free(), rest - kAlign);
  uint64_t p = alloc(rest - kAlign);
  EXPECT_EQ(p, last);
  EXPECT_EQ(st().top.load(), st().heap_end);
  EXPECT_EQ(a().largest_free(), 0u);
  EXPECT_EQ(a().stats().used_bytes, capacity());
  ASSERT_TRUE(CheckOk(a()));
  auto r = a().allocate(0, 1, 1);
  EXPECT_EQ(r.status().code(), StatusCode::kStoreFull);
}

// --- full ---------------------------------------------------------------------------------------

TEST_F(AllocatorTest, StoreFullWhenNothingFitsAndTheAllocatorStillWorks) {
  make(64 << 10);
  for (uint64_t huge : {capacity() + 1, capacity(), ~uint64_t{0}, ~uint64_t{0} - 100}) {
    auto r = a().allocate(huge, 1, 1);
    EXPECT_EQ(r.status().code(), StatusCode::kStoreFull) << huge;
    EXPECT_FALSE(r.status().message().empty());
  }
  ASSERT_TRUE(CheckOk(a()));

  std::vector<uint64_t> blocks;
  for (;;) {
    auto r = a().allocate(4096 - kAlign, 1, blocks.size());
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kStoreFull);
      break;
    }
    blocks.push_back(*r);
  }
  ASSERT_EQ(blocks.size(), capacity() / 4096);
  const AllocatorStats full = a().stats();
  EXPECT_EQ(full.used_bytes, capacity());
  ASSERT_TRUE(CheckOk(a()));

  // Fragmented: half the heap is free, but in 4 KiB holes.
  for (size_t i = 0; i < blocks.size(); i += 2) a().free(blocks[i]);
  ASSERT_TRUE(CheckOk(a()));
  EXPECT_EQ(a().largest_free(), 4096 - kAlign);
  auto r = a().allocate(8192 - kAlign, 1, 1);
  EXPECT_EQ(r.status().code(), StatusCode::kStoreFull);
  EXPECT_EQ(a().stats().used_bytes, capacity() / 2) << "a failed allocate changes nothing";
  ASSERT_TRUE(CheckOk(a()));

  // A hole is reused; freeing a neighbour makes room for a double block.
  uint64_t again = alloc(4096 - kAlign);
  EXPECT_TRUE(std::find(blocks.begin(), blocks.end(), again) != blocks.end() &&
              (std::find(blocks.begin(), blocks.end(), again) - blocks.begin()) % 2 == 0)
      << "a 4 KiB request fills one of the 4 KiB holes";
  a().free(again);
  a().free(blocks[1]);
  EXPECT_EQ(alloc(8192 - kAlign), blocks[0]);
  ASSERT_TRUE(CheckOk(a()));
}

// --- largest_free -------------------------------------------------------------------------------

TEST_F(AllocatorTest, LargestFreeIsWhatOneAllocationCanGet) {
  make(64 << 10);
  EXPECT_EQ(a().largest_free(), capacity() - kAlign);
  uint64_t x = alloc(8192 - kAlign);
  ASSERT_NE(x, 0u);
  EXPECT_EQ(a().largest_free(), capacity() - 8192 - kAlign) << "the wilderness";

  // A free block in the middle larger than the wilderness. Its size (2112) is not on a
  // size-class boundary, so good-fit rounding alone would not find it.
  Allocator::init(&st(), kBegin, map_size_);
  uint64_t hole = alloc(2048);  // a 2112-byte block
  uint64_t guard = alloc(64);
  ASSERT_NE(guard, 0u);
  uint64_t filler = alloc(capacity() - 2112 - kMinBlock - 1024 - kAlign);
  ASSERT_NE(filler, 0u);
  ASSERT_EQ(st().heap_end - st().top.load(), 1024u);
  a().free(hole);
  ASSERT_TRUE(CheckOk(a()));
  const uint64_t lf = a().largest_free();
  EXPECT_EQ(lf, 2048u);
  auto over = a().allocate(lf + 1, 1, 1);
  EXPECT_EQ(over.status().code(), StatusCode::kStoreFull);
  auto exact = a().allocate(lf, 1, 1);
  ASSERT_TRUE(exact.ok()) << "largest_free() promised " << lf << " bytes: "
                          << exact.status().message();
  EXPECT_EQ(*exact, hole);
  ASSERT_TRUE(CheckOk(a()));

  // A free last block counts together with the wilderness after it.
  a().free(filler);
  EXPECT_EQ(a().largest_free(), st().heap_end - (filler - kAlign) - kAlign);
  ASSERT_TRUE(CheckOk(a()));
}

// A block that fits but sits deep in its class's list (behind many smaller ones) is found
// before the heap grows, and allocate(largest_free()) always succeeds.
TEST_F(AllocatorTest, ABlockThatFitsIsFoundBehindALongListOfSmallerOnes) {
  make(256 << 10);
  for (bool with_wilderness : {false, true}) {
    Allocator::init(&st(), kBegin, map_size_);
    // One 2112-byte block freed first, then 40 blocks of 2048 bytes: all in class
    // [2048, 2176), the 2112 one at the tail of the list.
    uint64_t fits = alloc(2048);
    (void)alloc(0);
    std::vector<uint64_t> smaller;
    for (int i = 0; i < 40; ++i) {
      smaller.push_back(alloc(2048 - kAlign));
      (void)alloc(0);  // guards keep the holes apart
    }
    uint64_t rest = st().heap_end - st().top.load() - (with_wilderness ? 64 << 10 : 0);
    (void)alloc(rest - kAlign);
    a().free(fits);
    for (uint64_t p : smaller) a().free(p);
    ASSERT_TRUE(CheckOk(a()));
    const uint64_t hw = a().stats().high_water;
    if (!with_wilderness) {
      EXPECT_EQ(a().largest_free(), 2048u);
    }
    auto r = a().allocate(2048, 1, 1);
    EXPECT_TRUE(r.ok()) << "a free 2112-byte block exists: " << r.status().message();
    if (r.ok()) {
      EXPECT_EQ(*r, fits) << "with wilderness: " << with_wilderness;
    }
    EXPECT_EQ(a().stats().high_water, hw) << "grew the heap past a free block that fits";
    ASSERT_TRUE(CheckOk(a()));
  }
}

TEST_F(AllocatorTest, RebuildAmidRandomTrafficFreesExactlyTheUnclaimed) {
  std::mt19937_64 rng(5);
  std::map<uint64_t, uint64_t> live;  // payload -> tag
  uint64_t tag = 0;
  int rebuilds = 0;
  for (int op = 1; op <= 6000; ++op) {
    if (!live.empty() && rng() % 2 == 0) {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      a().free(it->first);
      live.erase(it);
    } else {
      auto r = a().allocate(rng() % (16 << 10), 1, ++tag);
      if (r.ok()) live[*r] = tag;
    }
    if (op % 250 != 0) continue;
    // A crash: a quarter of the live blocks lost their table entries, and the lists and
    // counters are garbage.
    std::set<uint64_t> dropped;
    for (const auto& [p, t] : live) {
      if (rng() % 4 == 0) dropped.insert(p);
    }
    std::memset(st().heads, 0, sizeof(st().heads));
    st().fl_bitmap = rng();
    st().sl_bitmap[rng() % kFlCount] = static_cast<uint32_t>(rng());
    st().used_bytes = rng();
    st().used_blocks = rng();
    uint64_t freed = a().rebuild([&](uint64_t hi, uint64_t lo, uint64_t p) {
      auto it = live.find(p);
      EXPECT_TRUE(it != live.end()) << "keep() asked about a block that is not live";
      EXPECT_EQ(hi, 1u);
      return it != live.end() && it->second == lo && dropped.count(p) == 0;
    });
    EXPECT_EQ(freed, dropped.size()) << "op " << op;
    for (uint64_t p : dropped) live.erase(p);
    ASSERT_TRUE(CheckOk(a())) << "op " << op;
    ASSERT_EQ(a().stats().used_blocks, live.size());
    ++rebuilds;
  }
  EXPECT_EQ(rebuilds, 24);
}

// --- fuzz ---------------------------------------------------------------------------------------

TEST_F(AllocatorTest, RandomAllocFreeAgainstAShadowModel) {
  make(2 << 20);
  std::mt19937_64 rng(20240611);
  struct Live {
    uint64_t block_end;  // payload + usable
    uint64_t size;       // bytes asked for (and filled)
    uint8_t fill;
  };
  std::map<uint64_t, Live> live;  // payload -> Live
  uint64_t used_bytes = 0;
  uint64_t tag = 0;
  auto random_size = [&]() -> uint64_t {
    uint64_t r = rng() % 100;
    if (r < 70) return rng() % 512;
    if (r < 95) return 512 + rng() % 8192;
    return 8192 + rng() % (128 << 10);
  };
  auto verify_fill = [&](uint64_t payload, const Live& l) {
    const uint8_t* p = base_ + payload;
    for (uint64_t i = 0; i < l.size; ++i) {
      if (p[i] != l.fill) {
        ADD_FAILURE() << "payload " << payload << " byte " << i << " was overwritten";
        return false;
      }
    }
    return true;
  };
  auto free_one = [&]() {
    auto it = live.begin();
    std::advance(it, static_cast<long>(rng() % live.size()));
    verify_fill(it->first, it->second);
    used_bytes -= it->second.block_end - it->first + kAlign;
    a().free(it->first);
    live.erase(it);
  };

  int fulls = 0;
  for (int op = 0; op < 20000; ++op) {
    if (!live.empty() && rng() % 100 < 45) {
      free_one();
    } else {
      uint64_t size = random_size();
      auto r = a().allocate(size, 1, ++tag);
      if (!r.ok()) {
        ASSERT_EQ(r.status().code(), StatusCode::kStoreFull);
        ASSERT_LT(a().largest_free(), size) << "largest_free() said it fits (op " << op << ")";
        ++fulls;
        for (int k = 0; k < 8 && !live.empty(); ++k) free_one();
        continue;
      }
      uint64_t p = *r;
      uint64_t usable = a().usable_size(p);
      ASSERT_EQ(p % kAlign, 0u);
      ASSERT_GE(usable, size);
      ASSERT_GE(p - kAlign, st().heap_begin);
      ASSERT_LE(p + usable, st().heap_end);
      // No overlap with the neighbours on either side, headers included.
      auto next = live.lower_bound(p);
      if (next != live.end()) {
        ASSERT_LE(p + usable, next->first - kAlign) << "op " << op;
      }
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->second.block_end, p - kAlign) << "op " << op;
      }
      uint8_t fill = static_cast<uint8_t>(tag * 37 + 1);
      std::memset(base_ + p, fill, size);
      live[p] = Live{p + usable, size, fill};
      used_bytes += usable + kAlign;
    }
    if (op % 97 == 0) {
      ASSERT_TRUE(CheckOk(a())) << "op " << op;
      AllocatorStats s = a().stats();
      ASSERT_EQ(s.used_blocks, live.size());
      ASSERT_EQ(s.used_bytes, used_bytes);
    }
  }
  EXPECT_GT(fulls, 0) << "the fuzz should reach a full heap";
  while (!live.empty()) free_one();
  ASSERT_TRUE(CheckOk(a()));
  EXPECT_EQ(a().stats().used_bytes, 0u);
  EXPECT_EQ(a().largest_free(), capacity() - kAlign);
}

// --- rebuild ------------------------------------------------------------------------------------

TEST_F(AllocatorTest, RebuildOfAConsistentHeapChangesNothing) {
  std::vector<uint64_t> p;
  for (int i = 0; i < 20; ++i) p.push_back(alloc(100 + 997 * i, i));
  for (int i = 0; i < 20; i += 3) a().free(p[i]);
  ASSERT_TRUE(CheckOk(a()));
  const AllocatorStats before = a().stats();
  const uint64_t top = st().top.load();
  const uint64_t last = st().last_block;

  std::set<uint64_t> seen;
  uint64_t freed = a().rebuild([&](uint64_t hi, uint64_t lo, uint64_t payload) {
    EXPECT_EQ(hi, 1u);
    EXPECT_EQ(payload, p[lo]) << "keep() is told the payload of the block tagged " << lo;
    seen.insert(payload);
    return true;
  });
  EXPECT_EQ(freed, 0u);
  EXPECT_EQ(seen.size(), 20u - 7u) << "keep() is asked about every used block, once";
  ASSERT_TRUE(CheckOk(a()));
  const AllocatorStats after = a().stats();
  EXPECT_EQ(after.used_bytes, before.used_bytes);
  EXPECT_EQ(after.used_blocks, before.used_blocks);
  EXPECT_EQ(after.high_water, before.high_water);
  EXPECT_EQ(after.largest_free, before.largest_free);
  EXPECT_EQ(st().top.load(), top);
  EXPECT_EQ(st().last_block, last);
}

TEST_F(AllocatorTest, RebuildFreesAndCoalescesUnclaimedBlocks) {
  std::vector<uint64_t> p;
  for (int i = 0; i < 6; ++i) p.push_back(alloc(1000, i));
  a().free(p[3]);
  // Blocks 1, 2 (and the free 3 between them and 4) are not claimed any more: a process
  // died after erasing their table entries but before freeing the blocks.
  const std::set<uint64_t> claimed = {p[0], p[5]};
  uint64_t freed = a().rebuild([&](uint64_t, uint64_t, uint64_t payload) {
    return claimed.count(payload) != 0;
  });
  EXPECT_EQ(freed, 3u);  // blocks 1, 2 and 4
  ASSERT_TRUE(CheckOk(a()));
  EXPECT_EQ(a().stats().used_blocks, 2u);
  EXPECT_EQ(a().stats().used_bytes, 2 * block_of(1000));
  // Blocks 1..4 are one free block again.
  const uint64_t hw = a().stats().high_water;
  EXPECT_EQ(alloc(4 * block_of(1000) - kAlign), p[1]);
  EXPECT_EQ(a().stats().high_water, hw);
  ASSERT_TRUE(CheckOk(a()));
}

TEST_F(AllocatorTest, RebuildRepairsScribbledListsAndCounters) {
  std::vector<uint64_t> p;
  for (int i = 0; i < 12; ++i) p.push_back(alloc(500 * (i + 1), i));
  for (int i : {1, 4, 5, 9}) a().free(p[i]);
  ASSERT_TRUE(CheckOk(a()));
  const AllocatorStats before = a().stats();

  // A process died in the middle of list surgery: heads, bitmaps, links and counters lie.
  std::memset(st().heads, 0, sizeof(st().heads));
  st().heads[3][5] = p[7] - kAlign;  // a used block on a free list
  st().fl_bitmap = 0xdeadbeef;
  for (uint32_t& m : st().sl_bitmap) m = 0x5555;
  st().used_bytes = 12345;
  st().used_blocks = 999;
  st().last_block = p[2] - kAlign;
  hdr(p[6])->prev_phys = 64;
  hdr(p[4])->next_free = p[0] - kAlign;
  ASSERT_FALSE(a().check().ok());

  std::set<uint64_t> claimed(p.begin(), p.end());
  EXPECT_EQ(a().rebuild([&](uint64_t, uint64_t, uint64_t pl) { return claimed.count(pl) != 0; }),
            0u);
  ASSERT_TRUE(CheckOk(a()));
  const AllocatorStats after = a().stats();
  EXPECT_EQ(after.used_bytes, before.used_bytes);
  EXPECT_EQ(after.used_blocks, before.used_blocks);
  EXPECT_EQ(after.largest_free, before.largest_free);

  // And it allocates normally afterwards: the free holes are found through the new lists.
  const uint64_t hw = after.high_water;
  // Blocks 4 and 5 (2624 + 3072 bytes) are one hole; a 5632-byte block fits only there.
  EXPECT_EQ(alloc(5632 - kAlign), p[4]);
  EXPECT_EQ(a().stats().high_water, hw);
  ASSERT_TRUE(CheckOk(a()));
}

TEST_F(AllocatorTest, RebuildCutsATornTailBackToTheWilderness) {
  // allocate() extending a free last block stores its new size before the new top: a crash
  // in between leaves a block that overruns top. (remove_free has already marked it used.)
  uint64_t x = alloc(1000, 1);
  uint64_t last = alloc(1000, 2);
  a().free(last);
  const uint64_t old_top = st().top.load();
  BlockHeader* h = hdr(last);
  h->free = 0;
  h->size += 8192;
  ASSERT_FALSE(a().check().ok());

  uint64_t freed = a().rebuild([&](uint64_t, uint64_t, uint64_t pl) { return pl == x; });
  EXPECT_EQ(freed, 0u) << "the torn block is not walked, so not counted";
  EXPECT_EQ(st().top.load(), last - kAlign) << "top is cut at the torn block";
  EXPECT_LE(st().top.load(), old_top);
  EXPECT_EQ(st().last_block, x - kAlign);
  ASSERT_TRUE(CheckOk(a()));
  EXPECT_EQ(a().stats().used_blocks, 1u);
  EXPECT_EQ(alloc(5000), last) << "the wilderness restarts where the torn block was";
  ASSERT_TRUE(CheckOk(a()));
}

TEST_F(AllocatorTest, RebuildIgnoresAHalfWrittenHeaderPastTop) {
  // allocate() from the wilderness writes the new header before it advances top: a crash in
  // between leaves a plausible header in the wilderness that no walk must see.
  uint64_t x = alloc(1000, 1);
  const uint64_t top = st().top.load();
  auto* ghost = reinterpret_cast<BlockHeader*>(base_ + top);
  std::memset(static_cast<void*>(ghost), 0, sizeof(BlockHeader));
  ghost->size = 4096;
  ghost->prev_phys = x - kAlign;
  ghost->magic = kBlockMagic;
  ghost->tag_hi = 1;
  ghost->tag_lo = 99;
  std::memset(base_ + top + kAlign, 0xee, 128);  // garbage where a payload would be
  ASSERT_TRUE(CheckOk(a())) << "past top is not part of the heap";

  int asked = 0;
  uint64_t freed = a().rebuild([&](uint64_t, uint64_t lo, uint64_t) {
    ++asked;
    EXPECT_NE(lo, 99u) << "keep() asked about a block past top";
    return true;
  });
  EXPECT_EQ(freed, 0u);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(st().top.load(), top);
  ASSERT_TRUE(CheckOk(a()));
  uint64_t y = alloc(200, 2);
  EXPECT_EQ(y, top + kAlign);
  EXPECT_EQ(hdr(y)->size, block_of(200)) << "the header is rewritten, not trusted";
  EXPECT_EQ(hdr(y)->tag_lo, 2u);
  ASSERT_TRUE(CheckOk(a()));
}

TEST_F(AllocatorTest, RebuildRepairsATornStateAllAtOnce) {
  // Several crash leftovers at once, as a real recovery might meet them.
  std::vector<uint64_t> p;
  for (int i = 0; i < 8; ++i) p.push_back(alloc(3000, i));
  // (1) A block fresh from the wilderness whose tags were never written (tag 0, 0).
  uint64_t fresh = alloc(700, 0);
  hdr(fresh)->tag_hi = 0;
  a().free(p[2]);
  a().free(p[6]);
  // (2) A crash inside free(p[1]): it has absorbed its free successor p[2] (one size store)
  // but p[2] is still on its free list and the counters still count p[1] as used.
  hdr(p[1])->size += hdr(p[2])->size;
  // (3) A half-written header past top.
  auto* ghost = reinterpret_cast<BlockHeader*>(base_ + st().top.load());
  ghost->size = 1 << 16;
  ghost->magic = kBlockMagic;
  // (4) Counters and the last-block pointer are stale.
  st().used_bytes += 1 << 20;
  st().last_block = p[3] - kAlign;
  ASSERT_FALSE(a().check().ok());

  // The table still claims 0, 3, 4, 5, 7; not p[1] (its entry was erased) nor the fresh block.
  const std::set<uint64_t> claimed = {p[0], p[3], p[4], p[5], p[7]};
  uint64_t freed = a().rebuild([&](uint64_t hi, uint64_t lo, uint64_t pl) {
    if (hi == 0 && lo == 0) return false;  // untagged: nobody owns it
    return claimed.count(pl) != 0;
  });
  EXPECT_EQ(freed, 2u);
  ASSERT_TRUE(CheckOk(a()));
  EXPECT_EQ(a().stats().used_blocks, claimed.size());
  EXPECT_EQ(a().stats().used_bytes, claimed.size() * block_of(3000));
  // p[1] + p[2] form one hole of two blocks; p[6] is a hole; the fresh block is a free last
  // block.
  const uint64_t hw = a().stats().high_water;
  EXPECT_EQ(alloc(2 * block_of(3000) - kAlign), p[1]);
  EXPECT_EQ(alloc(3000), p[6]);
  EXPECT_EQ(alloc(700), fresh);
  EXPECT_EQ(a().stats().high_water, hw);
  ASSERT_TRUE(CheckOk(a()));
}

}  // namespace
}  // namespace ember
