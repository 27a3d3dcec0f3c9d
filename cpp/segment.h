// Segment: the node's shared memory, one anonymous memfd mapped by every process of the node.
//
// Invariants:
//  - The segment is a memfd (never a name in /dev/shm), so it disappears with the last process
//    that maps it or holds its fd, however the driver dies.
//  - Everything inside the segment is addressed by offsets from its base, never by pointers:
//    each process maps it at a different address.
//  - Offset 0 holds the SegmentHeader. `magic` is written last (release) by the creator, so a
//    process that attaches and sees the magic sees a fully initialised layout.
//  - The fd is inherited by children (no CLOEXEC); children attach by fd number.
//  - Unmapping happens in the destructor only; closing the fd early (close_fd) is allowed and
//    keeps the mapping valid.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "status.h"

namespace ember {

inline constexpr uint64_t kSegmentMagic = 0x4745'5352'4542'4d45ULL;  // "EMBERSEG"
// 3: StoreControl::spill (spill.h). 4: SpillControl::batches, the spiller of each batch in
// flight, replaces writing_bytes, and ObjectEntry::flags carries a victim's batch (spill.h S7).
// 5: StoreControl::unreported (failures freed unread, held for the driver to report).
inline constexpr uint32_t kSegmentVersion = 5;
inline constexpr uint64_t kPageSize = 4096;

/// Where each region of the segment lives; all offsets from the segment base.
struct SegmentHeader {
  std::atomic<uint64_t> magic;   ///< kSegmentMagic once initialised (release)
  uint32_t version;              ///< kSegmentVersion
  int32_t creator_pid;           ///< the driver that created the node
  uint64_t total_size;           ///< bytes mapped
  uint64_t node_tag;             ///< random per node: the high half of every ObjectID
  uint64_t store_offset;         ///< StoreControl (lock, allocator state, id counter)
  uint64_t table_offset;         ///< object table (page counters, then entries)
  uint64_t table_capacity;       ///< number of entries (a power of two)
  uint64_t heap_offset;          ///< first byte of the object heap (page aligned)
  uint64_t heap_size;            ///< bytes of heap
  uint64_t runtime_offset;       ///< the task runtime's region (task.h); 0 when none
  uint64_t runtime_size;
  uint64_t ledger_offset;        ///< per-client ledgers (ledger.h); 0 when none
  uint32_t ledger_clients;
  uint32_t ledger_capacity;      ///< entries per client (a power of two)
};
static_assert(sizeof(SegmentHeader) <= kPageSize);

/// A mapped memfd. Move-only; unmaps and closes on destruction.
class Segment {
 public:
  /// Creates a new memfd of `size` bytes (sparse: pages are allocated on first touch) and
  /// maps it read-write.
  static Result<std::unique_ptr<Segment>> create(uint64_t size);
  /// Maps the memfd `fd` inherited from the process that created it. Takes ownership of fd.
  static Result<std::unique_ptr<Segment>> attach(int fd);

  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  SegmentHeader* header() const { return reinterpret_cast<SegmentHeader*>(base_); }

  /// The object of type T at `offset` (no bounds check in release builds).
  template <typename T>
  T* at(uint64_t offset) const {
    return reinterpret_cast<T*>(base_ + offset);
  }
  /// True when [ptr, ptr+len) lies inside the mapping.
  bool contains(const void* ptr, uint64_t len) const;

  /// Closes the fd; the mapping stays valid until destruction.
  void close_fd();

 private:
  Segment(int fd, uint8_t* base, uint64_t size) : fd_(fd), base_(base), size_(size) {}
  int fd_;
  uint8_t* base_;
  uint64_t size_;
};

}  // namespace ember
