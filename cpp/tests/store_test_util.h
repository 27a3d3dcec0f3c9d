// Helpers shared by the store's tests (test_store, test_spill, test_residency): stores of a
// given shape, objects filled with a checkable pattern, a private spill directory, and the
// killing of a child process.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store.h"

namespace ember {
namespace testing_util {

using Clock = std::chrono::steady_clock;
inline constexpr uint64_t kMiB = uint64_t{1} << 20;

inline ::testing::AssertionResult CheckOk(Store& s) {
  Status st = s.check();
  if (st.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "check(): " << st.message();
}

/// A store made with `o` (the test fails if it cannot be made).
inline std::shared_ptr<Store> make_store(const StoreOptions& o) {
  auto r = Store::create(o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : nullptr;
}

/// A plain store of `capacity` bytes: no prefaulter, no spilling, one copy thread.
inline std::shared_ptr<Store> small_store(uint64_t capacity = 8 * kMiB) {
  StoreOptions o;
  o.capacity = capacity;
  o.prefault = false;
  o.copy_threads = 1;
  return make_store(o);
}

/// Creates, fills with a pattern derived from `seed`, and seals an object; returns its payload.
inline uint8_t* put(Store& s, const ObjectID& id, uint64_t size, uint8_t seed) {
  auto r = s.create_object(id, size);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return nullptr;
  for (uint64_t i = 0; i < size; ++i) (*r)[i] = static_cast<uint8_t>(seed + i * 7);
  EXPECT_TRUE(s.seal(id).ok());
  return *r;
}

inline bool has_pattern(const uint8_t* p, uint64_t size, uint8_t seed) {
  for (uint64_t i = 0; i < size; ++i) {
    if (p[i] != static_cast<uint8_t>(seed + i * 7)) return false;
  }
  return true;
}

/// Pins `id`, checks its bytes against the pattern of `seed`, unpins.
inline ::testing::AssertionResult HasPattern(Store& s, const ObjectID& id, uint64_t size,
                                             uint8_t seed) {
  auto v = s.pin(id);
  if (!v.ok()) return ::testing::AssertionFailure() << "pin: " << v.status().message();
  const bool same = v->size == size && has_pattern(v->data, size, seed);
  s.unpin(id);
  if (same) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "object " << id.hex() << " has other bytes";
}

/// Bytes of the segment (a memfd) backed by memory: what populating adds and punching removes.
inline uint64_t resident_bytes(const Store& s) {
  struct stat st{};
  if (fstat(s.fd(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

/// Polls `done` every millisecond until it holds or `limit` passes; returns its last value.
template <typename Done>
bool eventually(Done done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// Kills a child of the test with SIGKILL and reaps it.
inline void kill_and_reap(pid_t pid) {
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

/// A fresh private directory, removed (with its files) when the object goes.
class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/ember-store-test-XXXXXX";
    if (mkdtemp(t) != nullptr) path_ = t;
  }
  ~TempDir() {
    if (path_.empty()) return;
    if (DIR* d = opendir(path_.c_str())) {
      while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") unlink((path_ + "/" + name).c_str());
      }
      closedir(d);
    }
    rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  /// The names of the files in it.
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR* d = opendir(path_.c_str())) {
      while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") out.push_back(name);
      }
      closedir(d);
    }
    return out;
  }

 private:
  std::string path_;
};

}  // namespace testing_util
}  // namespace ember
