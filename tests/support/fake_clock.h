// FakeClock: a Clock whose time moves only when a test says so.
//
// Batching tests schedule tasks, advance the time past a delay or a
// deadline, and check what ran, without waiting for real time to pass.
// Advance wakes every thread waiting on the clock at once: nothing polls.
//
// Thread-safety: every method may be called from any thread.
// REQUIRES: a component waiting on this clock is not destroyed while
// Advance runs (Advance signals the condition variables of the waiters it
// found).
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "core/common/clock.h"
#include "core/common/mutex.h"

namespace biserve::testing {

class FakeClock final : public Clock {
 public:
  // An arbitrary fixed time, so that runs see the same numbers.
  static constexpr absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

  explicit FakeClock(absl::Time start = kStart) : now_(start) {}

  absl::Time Now() const override {
    MutexLock lock(&mu_);
    return now_;
  }

  // Moves the time forward by `duration` (>= 0) and wakes every waiter.
  void Advance(absl::Duration duration) {
    std::vector<Waiter> waiters;
    {
      MutexLock lock(&mu_);
      now_ += duration;
      for (const auto& [waiter, count] : waiters_) waiters.push_back(waiter);
    }
    // Under each waiter's own mutex: a waiter that registered before the
    // time moved but saw the old time holds that mutex until its wait has
    // begun, so this signal cannot fall before the wait. (Not under mu_:
    // waiters take mu_ while holding theirs.)
    for (const auto& [cv, mu] : waiters) {
      MutexLock lock(mu);
      cv->SignalAll();
    }
  }

  // Waits on `cv` until it is signalled or Advance reaches `deadline`;
  // returns at once when the deadline has already come.
  void WaitUntil(CondVar& cv, Mutex& mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const Waiter waiter{&cv, &mu};
    {
      MutexLock lock(&mu_);
      ++waits_;
      waits_cv_.SignalAll();
      if (now_ >= deadline) return;
      ++waiters_[waiter];  // before the time is read: see Advance
    }
    cv.Wait(&mu);
    MutexLock lock(&mu_);
    if (--waiters_[waiter] == 0) waiters_.erase(waiter);
  }

  // How many times WaitUntil has been entered. The caller of WaitUntil
  // holds its own lock while entering, so an entry counted after a change
  // made under that lock shows that the waiter has seen the change and
  // found nothing to do: tests use it to know that a scheduler thread has
  // settled.
  int64_t waits() const {
    MutexLock lock(&mu_);
    return waits_;
  }

  // Waits (in real time, up to `timeout`) until waits() exceeds `count`;
  // false on timeout.
  bool WaitForWaitsAbove(int64_t count, absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    MutexLock lock(&mu_);
    while (waits_ <= count) {
      if (waits_cv_.WaitWithDeadline(&mu_, give_up)) return waits_ > count;
    }
    return true;
  }

 private:
  using Waiter = std::pair<CondVar*, Mutex*>;

  mutable Mutex mu_;
  CondVar waits_cv_;  // waits_ grew
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  int64_t waits_ ABSL_GUARDED_BY(mu_) = 0;
  // The threads in WaitUntil, by what they wait on (and how many).
  std::map<Waiter, int> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace biserve::testing
