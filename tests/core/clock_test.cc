// The clocks, the annotated mutex and the thread names of core/common/.
#include "core/common/clock.h"

#include <pthread.h>

#include <string>
#include <thread>

#include "absl/time/time.h"
#include "core/common/mutex.h"
#include "core/common/thread_name.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/notification.h"

namespace biserve {
namespace {

using testing::FakeClock;

constexpr absl::Duration kBound = absl::Seconds(20);

TEST(RealClockTest, WaitUntilAPastDeadlineReturnsAtOnce) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  SystemClock().WaitUntil(cv, mu, absl::InfinitePast());
  SystemClock().WaitUntil(cv, mu, absl::Now() - absl::Seconds(1));
  SUCCEED();
}

TEST(FakeClockTest, MovesOnlyWhenAdvanced) {
  FakeClock clock;
  EXPECT_EQ(clock.Now(), FakeClock::kStart);
  clock.Advance(absl::Milliseconds(5));
  EXPECT_EQ(clock.Now(), FakeClock::kStart + absl::Milliseconds(5));
}

TEST(FakeClockTest, WaitUntilAReachedDeadlineReturnsAtOnce) {
  FakeClock clock;
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  clock.WaitUntil(cv, mu, FakeClock::kStart);
  EXPECT_EQ(clock.waits(), 1);
}

// A thread waiting on the clock until a deadline, as the schedulers do.
class Waiter {
 public:
  Waiter(FakeClock* clock, absl::Time deadline)
      : thread_([this, clock, deadline] {
          MutexLock lock(&mu_);
          while (clock->Now() < deadline) clock->WaitUntil(cv_, mu_, deadline);
          done_.Notify();
        }) {}
  ~Waiter() { thread_.join(); }
  testing::Notification& done() { return done_; }

 private:
  Mutex mu_;
  CondVar cv_;
  testing::Notification done_;
  std::thread thread_;  // last: starts once the rest exists
};

TEST(FakeClockTest, AdvanceWakesEveryWaiterWhoseDeadlineCame) {
  FakeClock clock;
  Waiter soon(&clock, FakeClock::kStart + absl::Seconds(1));
  Waiter later(&clock, FakeClock::kStart + absl::Seconds(2));
  ASSERT_TRUE(clock.WaitForWaitsAbove(1, kBound));  // both wait
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(soon.done().WaitForNotificationWithTimeout(kBound));
  EXPECT_FALSE(later.done().HasBeenNotified());
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(later.done().WaitForNotificationWithTimeout(kBound));
}

TEST(FakeClockTest, AnAdvanceWhileAWaiterIsOnItsWayInIsNotMissed) {
  // Many rounds of a waiter entering as the time moves: each must end.
  for (int round = 0; round < 200; ++round) {
    FakeClock clock;
    Waiter waiter(&clock, FakeClock::kStart + absl::Microseconds(1));
    clock.Advance(absl::Microseconds(1));
    ASSERT_TRUE(waiter.done().WaitForNotificationWithTimeout(kBound))
        << "round " << round;
  }
}

TEST(CondVarTest, SignalWakesAWaiter) {
  Mutex mu;
  CondVar cv;
  bool ready = false;  // guarded by mu
  std::thread setter([&] {
    MutexLock lock(&mu);
    ready = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(&mu);
    while (!ready) cv.Wait(&mu);
  }
  setter.join();
  EXPECT_TRUE(ready);
}

TEST(CondVarTest, WaitWithTimeoutReportsTheTimeout) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  EXPECT_TRUE(cv.WaitWithTimeout(&mu, absl::ZeroDuration()));
}

TEST(ThreadNameTest, NamesTheCallingThreadCutTo15Characters) {
  std::string name;
  std::thread([&] {
    SetCurrentThreadName("biserve-a-very-long-name");
    char buffer[16] = {};
    pthread_getname_np(pthread_self(), buffer, sizeof(buffer));
    name = buffer;
  }).join();
  EXPECT_EQ(name, "biserve-a-very-");
}

}  // namespace
}  // namespace biserve
