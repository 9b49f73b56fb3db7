// Clock: the time source of the batching scheduler, so that tests can drive
// it with a fake one.
#pragma once

#include <condition_variable>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace biserve {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Waits on `cv` (with `lock` held by the caller) until it is notified or
  // this clock reaches `deadline`; may return early (callers re-check).
  virtual void WaitUntil(std::condition_variable& cv,
                         std::unique_lock<std::mutex>& lock,
                         absl::Time deadline) = 0;
};

// The system's clock.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void WaitUntil(std::condition_variable& cv,
                 std::unique_lock<std::mutex>& lock,
                 absl::Time deadline) override {
    if (deadline == absl::InfiniteFuture()) {
      cv.wait(lock);
    } else if (deadline > absl::Now()) {
      cv.wait_until(lock, absl::ToChronoTime(deadline));
    }
  }
};

}  // namespace biserve
