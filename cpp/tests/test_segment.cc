// Tests for ember::Segment: creating the memfd, attaching it (here and in a forked child),
// rejecting fds that are not ember segments, contains(), and close_fd().
#include "segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace ember {
namespace {

constexpr uint64_t kSize = uint64_t{1} << 20;

/// Writes the header fields attach() validates, as Store::create does; magic last.
void stamp(Segment& s) {
  SegmentHeader* h = s.header();
  h->version = kSegmentVersion;
  h->creator_pid = getpid();
  h->total_size = s.size();
  h->node_tag = 0x1234;
  h->magic.store(kSegmentMagic, std::memory_order_release);
}

std::unique_ptr<Segment> make_segment(uint64_t size = kSize) {
  auto r = Segment::create(size);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return nullptr;
  stamp(**r);
  return std::move(*r);
}

/// attach() owns the fd it is given, but some failure paths leave it open: close it then.
void close_if_open(int fd) {
  if (fcntl(fd, F_GETFD) != -1) close(fd);
}

TEST(SegmentTest, CreateRejectsBadSizes) {
  for (uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{4095}, uint64_t{4097},
                        uint64_t{12345}, kSize + 1}) {
    auto r = Segment::create(size);
    ASSERT_FALSE(r.ok()) << size;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalid) << size;
  }
  auto r = Segment::create(kPageSize);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->size(), kPageSize);
}

TEST(SegmentTest, CreateMapsAZeroFilledInheritableMemfd) {
  auto r = Segment::create(kSize);
  ASSERT_TRUE(r.ok()) << r.status().message();
  Segment& s = **r;
  EXPECT_EQ(s.size(), kSize);
  ASSERT_GE(s.fd(), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s.base()) % kPageSize, 0u);
  EXPECT_EQ(static_cast<void*>(s.header()), static_cast<void*>(s.base()));
  EXPECT_EQ(s.at<uint8_t>(100), s.base() + 100);

  int flags = fcntl(s.fd(), F_GETFD);
  ASSERT_NE(flags, -1);
  EXPECT_EQ(flags & FD_CLOEXEC, 0) << "children must inherit the fd";
  struct stat st {};
  ASSERT_EQ(fstat(s.fd(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize);
  // A memfd, not a name in /dev/shm.
  char link[256] = {};
  std::string path = "/proc/self/fd/" + std::to_string(s.fd());
  ASSERT_GT(readlink(path.c_str(), link, sizeof(link) - 1), 0);
  EXPECT_EQ(std::string(link).rfind("/memfd:", 0), 0u) << link;

  EXPECT_EQ(s.header()->magic.load(), 0u) << "create() leaves the header to the store";
  for (uint64_t off : {uint64_t{0}, uint64_t{4096}, kSize / 2, kSize - 1}) {
    EXPECT_EQ(s.base()[off], 0) << off;
    s.base()[off] = 0x5a;
    EXPECT_EQ(s.base()[off], 0x5a);
  }
}

TEST(SegmentTest, AttachSeesTheSameBytesThroughAnotherAddress) {
  auto a = make_segment();
  ASSERT_NE(a, nullptr);
  for (uint64_t off = kPageSize; off < kSize; off += 4099 * 8) {
    *a->at<uint64_t>(off) = off * 0x9e3779b97f4a7c15ULL;
  }
  auto r = Segment::attach(dup(a->fd()));
  ASSERT_TRUE(r.ok()) << r.status().message();
  Segment& b = **r;
  EXPECT_NE(b.base(), a->base()) << "a second mapping of the same memfd";
  EXPECT_NE(b.fd(), a->fd());
  EXPECT_EQ(b.size(), kSize);
  EXPECT_EQ(b.header()->node_tag, 0x1234u);
  EXPECT_EQ(b.header()->creator_pid, getpid());
  for (uint64_t off = kPageSize; off < kSize; off += 4099 * 8) {
    ASSERT_EQ(*b.at<uint64_t>(off), off * 0x9e3779b97f4a7c15ULL) << off;
  }
  // And the other way round.
  *b.at<uint64_t>(kSize - 8) = 77;
  EXPECT_EQ(*a->at<uint64_t>(kSize - 8), 77u);
  EXPECT_FALSE(a->contains(b.base(), 1));
  EXPECT_TRUE(b.contains(b.base(), 1));
}

TEST(SegmentTest, AForkedChildAttachesByTheInheritedFd) {
  auto a = make_segment();
  ASSERT_NE(a, nullptr);
  const int fd = a->fd();
  *a->at<uint64_t>(8192) = 41;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child: a fresh mapping through the inherited fd number, as a worker would do.
    auto r = Segment::attach(dup(fd));
    if (!r.ok()) _exit(2);
    uint64_t* v = (*r)->at<uint64_t>(8192);
    if (*v != 41) _exit(3);
    *v = 42;
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(*a->at<uint64_t>(8192), 42u) << "the child's write is visible here";
}

TEST(SegmentTest, AttachRejectsFdsThatAreNotEmberSegments) {
  auto expect_invalid = [](int fd, const char* what) {
    auto r = Segment::attach(fd);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalid) << what << ": " << r.status().message();
    close_if_open(fd);
  };

  // A zero-filled memfd of a plausible size: no magic.
  int plain = memfd_create("not-ember", 0);
  ASSERT_GE(plain, 0);
  ASSERT_EQ(ftruncate(plain, kSize), 0);
  expect_invalid(plain, "plain memfd");

  // A memfd full of garbage.
  int junk = memfd_create("junk", 0);
  ASSERT_GE(junk, 0);
  std::string bytes(2 * kPageSize, '\xab');
  ASSERT_EQ(write(junk, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  expect_invalid(junk, "garbage memfd");

  // Too small to hold a header.
  int tiny = memfd_create("tiny", 0);
  ASSERT_GE(tiny, 0);
  ASSERT_EQ(ftruncate(tiny, 100), 0);
  expect_invalid(tiny, "100-byte memfd");

  // Not a file at all.
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  expect_invalid(p[0], "pipe");
  close(p[1]);

  // An ember segment whose creator has not published it yet (no magic).
  auto unstamped = Segment::create(kSize);
  ASSERT_TRUE(unstamped.ok());
  expect_invalid(dup((*unstamped)->fd()), "segment without magic");

  // Another layout version, or a header that disagrees with the file's size.
  auto seg = make_segment();
  ASSERT_NE(seg, nullptr);
  seg->header()->version = kSegmentVersion + 1;
  expect_invalid(dup(seg->fd()), "other version");
  seg->header()->version = kSegmentVersion;
  seg->header()->total_size = kSize / 2;
  expect_invalid(dup(seg->fd()), "total_size mismatch");
  seg->header()->total_size = kSize;
  auto ok = Segment::attach(dup(seg->fd()));
  EXPECT_TRUE(ok.ok()) << "the repaired header attaches: " << ok.status().message();
}

// attach() owns the fd it is given: every failure path closes it.
TEST(SegmentTest, AttachOwnsTheFdEvenWhenItFails) {
  int plain = memfd_create("not-ember", 0);
  ASSERT_GE(plain, 0);
  ASSERT_EQ(ftruncate(plain, kSize), 0);
  EXPECT_FALSE(Segment::attach(plain).ok());
  EXPECT_EQ(fcntl(plain, F_GETFD), -1) << "closed after a failed magic check";
  close_if_open(plain);

  int tiny = memfd_create("tiny", 0);
  ASSERT_GE(tiny, 0);
  EXPECT_FALSE(Segment::attach(tiny).ok());
  EXPECT_EQ(fcntl(tiny, F_GETFD), -1) << "left open after the size check failed";
  close_if_open(tiny);

  int p[2];
  ASSERT_EQ(pipe(p), 0);
  EXPECT_FALSE(Segment::attach(p[0]).ok());
  EXPECT_EQ(fcntl(p[0], F_GETFD), -1) << "left open: a pipe has size 0";
  close_if_open(p[0]);
  close(p[1]);
}

TEST(SegmentTest, AttachOfABadFdIsAnOSError) {
  auto r = Segment::attach(-1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIOError);
  EXPECT_NE(r.status().message().find("fstat"), std::string::npos) << r.status().message();
}

TEST(SegmentTest, ContainsChecksBoundsAndOverflow) {
  auto s = make_segment();
  ASSERT_NE(s, nullptr);
  uint8_t* b = s->base();
  EXPECT_TRUE(s->contains(b, kSize));
  EXPECT_TRUE(s->contains(b, 1));
  EXPECT_TRUE(s->contains(b + kSize - 1, 1));
  EXPECT_TRUE(s->contains(b + 4096, 4096));
  EXPECT_FALSE(s->contains(b, kSize + 1));
  EXPECT_FALSE(s->contains(b + kSize, 1));
  EXPECT_FALSE(s->contains(b + kSize - 1, 2));
  EXPECT_FALSE(s->contains(b - 1, 1));
  EXPECT_FALSE(s->contains(nullptr, 1));
  // A length that wraps the address space must not look small.
  EXPECT_FALSE(s->contains(b + 10, ~uint64_t{0}));
  EXPECT_FALSE(s->contains(b + 10, ~uint64_t{0} - 5));
  int local = 0;
  EXPECT_FALSE(s->contains(&local, sizeof(local)));
}

TEST(SegmentTest, CloseFdKeepsTheMappingValid) {
  auto s = make_segment();
  ASSERT_NE(s, nullptr);
  const int fd = s->fd();
  *s->at<uint64_t>(4096) = 99;
  s->close_fd();
  EXPECT_EQ(s->fd(), -1);
  EXPECT_EQ(fcntl(fd, F_GETFD), -1) << "the fd is closed";
  EXPECT_EQ(*s->at<uint64_t>(4096), 99u);
  *s->at<uint64_t>(8192) = 100;
  EXPECT_EQ(*s->at<uint64_t>(8192), 100u);
  s->close_fd();  // twice is harmless; so is the destructor afterwards
  EXPECT_EQ(s->fd(), -1);
}

TEST(SegmentTest, TheMemoryOutlivesTheCreatorsFdAndMapping) {
  auto a = make_segment();
  ASSERT_NE(a, nullptr);
  *a->at<uint64_t>(4096) = 123;
  auto r = Segment::attach(dup(a->fd()));
  ASSERT_TRUE(r.ok());
  a.reset();  // the creator unmaps and closes its fd
  EXPECT_EQ(*(*r)->at<uint64_t>(4096), 123u);
}

}  // namespace
}  // namespace ember
