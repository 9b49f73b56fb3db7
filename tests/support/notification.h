// Notification: a one-shot event for tests, with bounded waits.
//
// On std::mutex rather than absl::Notification: ThreadSanitizer sees
// through pthreads, not through Debian's uninstrumented libabsl, so the
// absl primitives would make it report races that are not there.
#pragma once

#include <condition_variable>
#include <mutex>

#include "absl/time/time.h"

namespace biserve::testing {

class Notification {
 public:
  // REQUIRES: called at most once.
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      notified_ = true;
    }
    cv_.notify_all();
  }

  bool HasBeenNotified() const {
    std::lock_guard<std::mutex> lock(mu_);
    return notified_;
  }

  // Whether Notify was called within `timeout`.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                        [this] { return notified_; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;  // guarded by mu_
};

}  // namespace biserve::testing
