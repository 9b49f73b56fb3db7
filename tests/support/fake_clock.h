// FakeClock: a Clock whose time moves only when a test says so.
//
// Batching tests schedule tasks, advance the time past a delay or a
// deadline, and check what ran, without waiting for real time to pass.
//
// Thread-safety: every method may be called from any thread. On std::mutex
// rather than absl::Mutex, for ThreadSanitizer (see notification.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "absl/time/time.h"
#include "core/common/clock.h"

namespace biserve::testing {

class FakeClock final : public Clock {
 public:
  // An arbitrary fixed time, so that runs see the same numbers.
  static constexpr absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

  explicit FakeClock(absl::Time start = kStart) : now_(start) {}

  absl::Time Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }

  // Moves the time forward by `duration` (>= 0). Waiters see it within a
  // millisecond of real time (see WaitUntil).
  void Advance(absl::Duration duration) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += duration;
  }

  // Waits on `cv` for at most one millisecond of real time, and returns at
  // once when `deadline` has already come. Callers re-check the clock and
  // their state after every return (the Clock contract allows early
  // returns), so a wait on this clock ends within a millisecond of the
  // Advance that reaches its deadline. Advance could notify `cv` instead,
  // but it does not know the waiters' condition variables, and a waiter
  // that is between reading Now() and waiting would miss that notification
  // and sleep until the next one; the short poll has no such window.
  void WaitUntil(std::condition_variable& cv,
                 std::unique_lock<std::mutex>& lock,
                 absl::Time deadline) override {
    {
      std::lock_guard<std::mutex> guard(mu_);
      ++waits_;
    }
    waits_cv_.notify_all();
    if (Now() >= deadline) return;
    cv.wait_for(lock, std::chrono::milliseconds(1));
  }

  // How many times WaitUntil has been entered. The caller of WaitUntil
  // holds its own lock while entering, so an entry counted after a change
  // made under that lock shows that the waiter has seen the change and
  // found nothing to do: tests use it to know that a scheduler thread has
  // settled.
  int64_t waits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return waits_;
  }

  // Waits (in real time, up to `timeout`) until waits() exceeds `count`;
  // false on timeout.
  bool WaitForWaitsAbove(int64_t count, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return waits_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                              [&] { return waits_ > count; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable waits_cv_;  // waits_ grew
  absl::Time now_;                    // guarded by mu_
  int64_t waits_ = 0;                 // guarded by mu_
};

}  // namespace biserve::testing
