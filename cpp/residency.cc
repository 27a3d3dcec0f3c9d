// Residency: the populated-chunk map, the prefaulter and the idle trim. The protocol and its
// invariants (R1-R5) are in residency.h.
#include "residency.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "parallel_copy.h"
#include "store.h"

namespace ember {

namespace {
constexpr uint64_t kTrimPagesPerLock = 4096;  // table pages looked at per lock hold
}  // namespace

Residency::Residency(Store& store, uint64_t heap_size)
    : s_(store),
      n_chunks_((heap_size + kChunk - 1) / kChunk),
      populated_(new std::atomic<uint64_t>[(n_chunks_ + 63) / 64]()) {}

void Residency::start_prefaulter() {
  prefaulter_.start([this](BackgroundThread& t) { prefault_loop(t); });
}

void Residency::start_trimmer(double idle_trim_s) {
  trimmer_.start([this, idle_trim_s](BackgroundThread& t) { trim_loop(t, idle_trim_s); });
}

void Residency::stop() {
  prefaulter_.stop();
  trimmer_.stop();
}

void Residency::prepare_thunk(void* self, uint8_t* p, size_t len) {
  static_cast<Residency*>(self)->prepare_range(p, len);
}

void Residency::prepare_range(uint8_t* p, size_t len) {
  uint8_t* heap = s_.seg_->base() + s_.seg_->header()->heap_offset;
  if (len == 0 || p < heap) return;
  const uint64_t heap_size = s_.seg_->header()->heap_size;
  uint64_t first = static_cast<uint64_t>(p - heap) / kChunk;
  uint64_t last = std::min(n_chunks_ - 1, static_cast<uint64_t>(p + len - 1 - heap) / kChunk);
  // relaxed: the map is a hint (R1); populating a chunk twice is harmless.
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

// --- the prefaulter -------------------------------------------------------------------------

void Residency::hint(uint64_t alloc_size) {
  if (!prefaulter_.started()) return;  // not the creator, or no prefaulting
  const uint64_t cap = std::min(kMaxWindow, s_.seg_->header()->heap_size / 8);
  prefaulter_.notify([&] {
    window_ = std::max(window_, std::min(cap, std::max(kMinWindow, 2 * alloc_size)));
    ++requests_;
  });
}

void Residency::prefault_loop(BackgroundThread& t) {
  // SCHED_IDLE: the prefaulter only uses a core nobody else wants, so it never slows the
  // copy it is trying to speed up.
  sched_param sp{};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
  uint64_t seen = 0, window = 0;
  uint8_t* heap = s_.seg_->base() + s_.seg_->header()->heap_offset;
  const uint64_t heap_size = s_.seg_->header()->heap_size;
  // The predicate runs under the prefaulter's mutex: it copies out what that mutex guards.
  auto hinted = [&] {
    if (requests_ == seen) return false;
    seen = requests_;
    window = window_;
    return true;
  };
  while (t.wait(hinted)) {
    // Without the lock: top only steers which pages to warm (R4, AllocatorState::top).
    const uint64_t top = s_.alloc_.top() - s_.seg_->header()->heap_offset;
    const uint64_t end = std::min(heap_size, top + window);
    for (uint64_t at = top; at < end; at += kChunk) {
      if (t.stopping()) return;
      prepare_range(heap + at, std::min(kChunk, end - at));
    }
  }
}

// --- the idle trim --------------------------------------------------------------------------

void Residency::trim_loop(BackgroundThread& t, double idle_trim_s) {
  // Nice 19, not SCHED_IDLE: while it punches a block, that block is out of the free lists
  // (R3), so it must not stall for seconds when the user's tasks keep every core busy.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  // Passes of 100 ms without an allocation before the trim.
  const int passes_to_trim = std::max(1, static_cast<int>(idle_trim_s * 10));
  uint64_t last_allocations = 0, trimmed_at = ~uint64_t{0};
  int idle_passes = 0;
  // Woken only by stop(): the allocation counter is looked at every 100 ms.
  while (t.wait_for(std::chrono::milliseconds(100), [] { return false; })) {
    uint64_t allocations;
    {
      Store::Locked lock(s_);
      allocations = s_.ctl_->allocations;
    }
    idle_passes = allocations == last_allocations ? idle_passes + 1 : 0;
    last_allocations = allocations;
    if (idle_passes >= passes_to_trim && trimmed_at != allocations) {
      give_back_memory(&t);
      trimmed_at = allocations;  // once per idle period: a trimmed store stays trimmed
    }
  }
}

void Residency::punch(uint64_t offset, uint64_t len) {
  uint64_t a = (offset + kPageSize - 1) / kPageSize * kPageSize;  // whole pages inside only
  uint64_t b = (offset + len) / kPageSize * kPageSize;
  if (b <= a || s_.seg_->fd() < 0) return;
  fallocate(s_.seg_->fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(a),
            static_cast<off_t>(b - a));
  // Chunks wholly punched are no longer populated in this process.
  const uint64_t heap = s_.seg_->header()->heap_offset;
  if (b <= heap) return;
  uint64_t first = (std::max(a, heap) - heap + kChunk - 1) / kChunk;
  uint64_t last = (b - heap) / kChunk;  // exclusive
  for (uint64_t c = first; c < last && c < n_chunks_; ++c) {
    populated_[c / 64].fetch_and(~(uint64_t{1} << (c % 64)), std::memory_order_relaxed);
  }
}

uint64_t Residency::give_back_memory(BackgroundThread* t) {
  auto stopping = [t] { return t != nullptr && t->stopping(); };
  uint64_t given = 0;
  std::vector<std::pair<uint64_t, uint64_t>> blocks;
  {
    Store::Locked lock(s_);
    blocks = s_.alloc_.warm_free_blocks(kTrimFrom);
  }
  // 1. Free blocks, each out of the free lists while its pages are punched without the lock.
  for (const auto& [payload, bytes] : blocks) {
    if (stopping()) return given;
    {
      Store::Locked lock(s_);
      if (!s_.alloc_.take_for_trim(payload, bytes)) continue;  // taken or merged meanwhile
      s_.ctl_->trimming_bytes += bytes;
    }
    punch(payload, bytes);
    given += bytes;
    Store::Locked lock(s_);
    s_.alloc_.return_trimmed(payload, bytes);
    s_.ctl_->trimming_bytes -= bytes;
  }
  // 2. Table pages whose objects are all gone (ids move on through the table and never come
  // back to a page before a wrap), a batch per lock hold: an insert landing in a page while
  // it is punched would be lost, and a whole 1 GiB table at once would stall every process.
  ObjectTable& table = s_.table_;
  const uint8_t* slots0 = reinterpret_cast<const uint8_t*>(&table.at(0));
  const uint64_t slots_off = static_cast<uint64_t>(slots0 - s_.seg_->base());
  for (uint64_t looked = 0; looked < table.num_pages(); looked += kTrimPagesPerLock) {
    if (stopping()) return given;
    Store::Locked lock(s_);
    given += kPageSize * table.trim(kTrimPagesPerLock, [&](uint64_t first, uint64_t n) {
      punch(slots_off + first * sizeof(ObjectEntry), n * sizeof(ObjectEntry));
    });
  }
  // 3. The wilderness: never handed out, but the prefaulter may have populated it. Under the
  // lock, so no allocation can grow into it meanwhile.
  Store::Locked lock(s_);
  const SegmentHeader* h = s_.seg_->header();
  const uint64_t top = s_.alloc_.top();
  const uint64_t end = h->heap_offset + h->heap_size;
  if (end > top) {
    punch(top, end - top);
    given += end - top;
  }
  return given;
}

}  // namespace ember
