// Tests for ember::BackgroundThread: stop() wakes a sleeping loop at once and joins it; a
// stop that comes before the loop first sleeps is not lost; notify() runs its update under
// the loop's mutex and wakes it; stop() without start() and twice does nothing.
#include "background_thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace ember {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

TEST(BackgroundThreadTest, StopWakesASleepingLoopAndJoinsItAtOnce) {
  BackgroundThread t;
  std::atomic<int> passes{0};
  std::atomic<bool> returned{false};
  t.start([&](BackgroundThread& self) {
    while (self.wait_for(1h, [] { return false; })) ++passes;
    returned = true;
  });
  EXPECT_TRUE(t.started());
  std::this_thread::sleep_for(20ms);  // asleep in wait_for by now (and if not: B2)
  const auto t0 = Clock::now();
  t.stop();
  EXPECT_LT(Clock::now() - t0, 1s) << "woken, not timed out";
  EXPECT_TRUE(returned.load()) << "stop() returns after the loop does";
  EXPECT_EQ(passes.load(), 0);
  t.stop();  // twice: nothing
}

TEST(BackgroundThreadTest, AStopBeforeTheLoopFirstSleepsIsNotLost) {
  for (int i = 0; i < 200; ++i) {
    BackgroundThread t;
    t.start([](BackgroundThread& self) {
      while (self.wait([] { return false; })) {
      }
    });
    t.stop();  // often before the thread has even run: it must still see the flag (B2)
  }
}

TEST(BackgroundThreadTest, NotifyUpdatesUnderTheMutexAndWakesTheLoop) {
  BackgroundThread t;
  uint64_t requests = 0;  // guarded by t's mutex, as the prefaulter's are
  std::atomic<uint64_t> handled{0};
  t.start([&](BackgroundThread& self) {
    uint64_t seen = 0;
    auto hinted = [&] {
      if (requests == seen) return false;
      seen = requests;  // copied out under the mutex
      return true;
    };
    while (self.wait(hinted)) handled.store(seen, std::memory_order_release);
  });
  for (uint64_t i = 1; i <= 100; ++i) {
    t.notify([&] { ++requests; });
    const auto deadline = Clock::now() + 5s;
    while (handled.load(std::memory_order_acquire) != i && Clock::now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_EQ(handled.load(std::memory_order_acquire), i) << "every notify wakes the loop";
  }
  t.stop();
  t.notify([&] { ++requests; });  // after stop: updates, wakes nobody, harmless
}

TEST(BackgroundThreadTest, StopWithoutStartDoesNothing) {
  BackgroundThread t;
  EXPECT_FALSE(t.started());
  t.stop();
  t.stop();
  EXPECT_FALSE(t.started());
}

}  // namespace
}  // namespace ember
