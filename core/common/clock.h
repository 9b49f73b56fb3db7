// Clock: where every component that reads the time or waits for it gets
// it, so that tests drive time with a fake clock (tests/support/
// fake_clock.h) instead of sleeping.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/common/mutex.h"

namespace biserve {

// Thread-safety: every method may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Releases `mu`, waits until `cv` is signalled or this clock reaches
  // `deadline`, and takes `mu` again. May return early: callers re-check
  // their condition and the time. `cv` is signalled under `mu` or after
  // its change was made under `mu`, as usual; a fake clock also signals it
  // (under `mu`) when its time moves.
  virtual void WaitUntil(CondVar& cv, Mutex& mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
};

// The system's clock.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void WaitUntil(CondVar& cv, Mutex& mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (deadline == absl::InfiniteFuture() || deadline > absl::Now()) {
      cv.WaitWithDeadline(&mu, deadline);
    }
  }
};

// The process's RealClock: what a component uses when its Options give no
// clock. It has no state, so sharing it is free.
inline Clock& SystemClock() {
  static RealClock* const clock = new RealClock();
  return *clock;
}

}  // namespace biserve
