// Segment: creating, attaching and releasing the node's memfd mapping.
#include "segment.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ember {

namespace {
Status os_error(const char* what) {
  return Status(StatusCode::kIOError, std::string(what) + ": " + std::strerror(errno));
}
}  // namespace

Result<std::unique_ptr<Segment>> Segment::create(uint64_t size) {
  if (size == 0 || size % kPageSize != 0) {
    return Status(StatusCode::kInvalid, "segment size must be a positive multiple of 4096");
  }
  // No MFD_CLOEXEC: workers inherit the fd across fork+exec.
  int fd = memfd_create("ember-segment", 0);
  if (fd < 0) return os_error("memfd_create");
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    Status st = os_error("ftruncate of the segment");
    close(fd);
    return st;
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    Status st = os_error("mmap of the segment");
    close(fd);
    return st;
  }
  return std::unique_ptr<Segment>(new Segment(fd, static_cast<uint8_t*>(p), size));
}

Result<std::unique_ptr<Segment>> Segment::attach(int fd) {
  // Owns fd from here on: every failure closes it.
  auto fail = [fd](Status st) {
    close(fd);
    return st;
  };
  struct stat st {};
  if (fstat(fd, &st) != 0) return fail(os_error("fstat of the segment fd"));
  auto size = static_cast<uint64_t>(st.st_size);
  if (size < kPageSize) return fail(Status(StatusCode::kInvalid, "fd is not an ember segment"));
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail(os_error("mmap of the segment"));
  auto seg = std::unique_ptr<Segment>(new Segment(fd, static_cast<uint8_t*>(p), size));
  SegmentHeader* h = seg->header();
  // acquire: pairs with the creator's release store of the magic (see the invariants).
  if (h->magic.load(std::memory_order_acquire) != kSegmentMagic ||
      h->version != kSegmentVersion || h->total_size != size) {
    return Status(StatusCode::kInvalid, "fd is not an ember segment of this version");
  }
  return seg;
}

Segment::~Segment() {
  munmap(base_, size_);
  close_fd();
}

void Segment::close_fd() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

bool Segment::contains(const void* ptr, uint64_t len) const {
  auto p = reinterpret_cast<uintptr_t>(ptr);
  auto b = reinterpret_cast<uintptr_t>(base_);
  return p >= b && p + len <= b + size_ && p + len >= p;
}

}  // namespace ember
