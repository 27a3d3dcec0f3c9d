// parallel_copy: large copies into the segment, split across threads, faulting pages in bulk.
//
// A single core copies warm memory at ~12 GB/s here but first-touches fresh shared memory at
// under 1 GB/s, one page fault at a time. Two things recover that: MADV_POPULATE_WRITE maps
// a whole range in one call (several times faster than faulting page by page), and several
// threads each populate and copy their own slice. Below kParallelCopyMin a plain memcpy on
// the calling thread is fastest (thread start-up costs ~20 us).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ember {

inline constexpr size_t kParallelCopyMin = size_t{8} << 20;
/// From this size a slice is copied with non-temporal stores (see stream_copy).
inline constexpr size_t kStreamCopyMin = size_t{4} << 20;

/// memcpy with non-temporal stores on x86-64 (plain memcpy elsewhere).
void stream_copy(uint8_t* dst, const uint8_t* src, size_t len);

/// Makes the pages of [p, p+len) present and writable in this process (rounding outward to
/// pages). Never changes their contents, so it is safe on memory other threads are writing.
void populate_write(void* p, size_t len);

/// A hook that makes [dst, dst+len) writable without faults before it is copied into; called
/// on each slice from the thread that copies it. May be empty.
using PrepareFn = void (*)(void* ctx, uint8_t* dst, size_t len);

/// Copies `len` bytes; for large copies uses up to `max_threads` threads (the caller's
/// included), each running `prepare` then memcpy on its slices.
void parallel_copy(uint8_t* dst, const uint8_t* src, size_t len, unsigned max_threads,
                   PrepareFn prepare = nullptr, void* ctx = nullptr);

}  // namespace ember
