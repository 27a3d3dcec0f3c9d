// checksum64: a fast 64-bit checksum of a byte range, to tell a spilled object that comes back
// from disk changed (a bad sector, a truncated or overwritten file) from one that is intact.
//
// Not a cryptographic hash: the spill directory is private to its user (0700), so the threat is
// accident, not an adversary. Four independent multiply-xorshift lanes over 32 bytes per step
// keep the CPU's multipliers busy, ~10 GB/s on one core here, so checking a 100 MB object costs
// ~10 ms against the ~50 ms of reading it back from the page cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ember {

namespace checksum_detail {
constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio: odd, well mixed bits

inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);  // unaligned-safe; compiles to one load
  return v;
}

inline uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v * kMul;
  h ^= h >> 29;
  return h * kMul;
}
}  // namespace checksum_detail

/// A 64-bit checksum of `data[0, n)`; the length is mixed in, so a truncation changes it.
inline uint64_t checksum64(const uint8_t* data, size_t n) {
  using checksum_detail::load64;
  using checksum_detail::mix;
  uint64_t a = 1, b = 2, c = 3, d = 4;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a = mix(a, load64(data + i));
    b = mix(b, load64(data + i + 8));
    c = mix(c, load64(data + i + 16));
    d = mix(d, load64(data + i + 24));
  }
  uint64_t h = mix(mix(mix(mix(n, a), b), c), d);
  for (; i + 8 <= n; i += 8) h = mix(h, load64(data + i));
  if (i < n) {
    uint64_t tail = 0;
    std::memcpy(&tail, data + i, n - i);
    h = mix(h, tail);
  }
  return h;
}

}  // namespace ember
