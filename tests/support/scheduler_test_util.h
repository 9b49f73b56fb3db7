// What the scheduler tests (dynamic_batch_scheduler_test.cc,
// unbatched_scheduler_test.cc) share: a bound on every wait, a recorder of
// the tasks' `done` calls, a gate that holds a thread, a clock that can
// park a scheduler thread in its wait, a random model that takes features,
// and the comparison of a task's results with Evaluate's.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "core/common/clock.h"
#include "core/common/mutex.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/notification.h"
#include "tests/support/random_model.h"
#include "tests/support/test_util.h"

namespace biserve::testing {

// Every wait in these tests is bounded by this: a bug fails the test
// instead of hanging it.
inline constexpr absl::Duration kBound = absl::Seconds(20);

// What a task's `done` receives.
using DoneResult = absl::StatusOr<std::vector<SequenceResult>>;

// Waits until `condition` holds, checking it every millisecond of real
// time, for at most kBound. For conditions no callback reports (a thread
// returning from a call); the time only bounds the wait and decides
// nothing.
inline bool Eventually(const std::function<bool()>& condition) {
  const absl::Time give_up = absl::Now() + kBound;
  while (!condition()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// Records each task's `done` calls, by task id.
class Completions {
 public:
  absl::AnyInvocable<void(DoneResult)> Callback(int id) {
    return [this, id](DoneResult result) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++calls_[id];
        order_.push_back(id);
        results_.emplace(id, std::move(result));
      }
      cv_.notify_all();
    };
  }

  // Waits until `n` calls in all have been recorded; false on timeout.
  bool WaitForCount(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(kBound),
                        [&] { return static_cast<int>(order_.size()) >= n; });
  }
  // Waits until every task of `ids` has been answered; false on timeout.
  bool WaitFor(const std::vector<int>& ids) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(kBound), [&] {
      return std::all_of(ids.begin(), ids.end(),
                         [&](int id) { return calls_.count(id) > 0; });
    });
  }

  int Count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(order_.size());
  }
  int CallsFor(int id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calls_.find(id);
    return it == calls_.end() ? 0 : it->second;
  }
  // The status of task `id`'s first answer; UNKNOWN if it has none.
  absl::Status StatusOf(int id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = results_.find(id);
    if (it == results_.end()) return absl::UnknownError("no answer");
    return it->second.status();
  }
  DoneResult ResultOf(int id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = results_.find(id);
    if (it == results_.end()) return absl::UnknownError("no answer");
    return it->second;
  }
  // The ids of the calls, in the order they came.
  std::vector<int> Order() const {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, int> calls_;                // guarded by mu_
  std::vector<int> order_;                  // guarded by mu_
  std::multimap<int, DoneResult> results_;  // guarded by mu_
};

// Holds a thread at a point of the test's choosing: Enter reports that the
// thread arrived and waits for Release.
class Gate {
 public:
  void Enter() {
    entered_.Notify();
    release_.WaitForNotificationWithTimeout(kBound);
  }
  // An is_cancelled callback that enters the gate and answers "not
  // cancelled": it holds an executor inside a task, since the executor
  // calls it right before computing.
  std::function<bool()> Blocker() {
    return [this] {
      Enter();
      return false;
    };
  }
  bool WaitUntilEntered() {
    return entered_.WaitForNotificationWithTimeout(kBound);
  }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

 private:
  Notification entered_;
  Notification release_;
};

// A Clock that reads and waits on a FakeClock, except that it can hold the
// next thread that waits on it at a Gate, with the scheduler's lock
// released, until the test releases the gate. A batch thread or executor
// held so sees nothing of what is scheduled meanwhile: it is a thread the
// OS has not woken yet, made deterministic. While it is held, tasks stay
// queued with nothing running.
class ParkingClock final : public Clock {
 public:
  // `clock` is not owned and must outlive this one.
  explicit ParkingClock(FakeClock* clock) : clock_(clock) {}

  absl::Time Now() const override { return clock_->Now(); }

  // The next WaitUntil call enters `gate` (which must outlive the call).
  void ParkNextWait(Gate* gate) {
    MutexLock lock(&mu_);
    park_ = gate;
  }

  void WaitUntil(CondVar& cv, Mutex& mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Gate* gate;
    {
      MutexLock lock(&mu_);
      gate = park_;
      park_ = nullptr;
    }
    if (gate == nullptr) {
      clock_->WaitUntil(cv, mu, deadline);
      return;
    }
    mu.Unlock();
    gate->Enter();
    mu.Lock();
  }

 private:
  FakeClock* const clock_;
  Mutex mu_;
  Gate* park_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// A random model spec that takes features (never token ids).
inline ModelSpec RandomFeatureModelSpec(std::mt19937& rng) {
  RandomModelOptions options;
  options.allow_embedding = false;
  return RandomModelSpec(rng, options);
}

// What Evaluate gives for `sequences` alone; a test failure and no results
// if it fails.
inline std::vector<SequenceResult> EvaluateAlone(
    const Model& model, absl::Span<const SequenceInput> sequences,
    const EvalOptions& options, ThreadPool& pool) {
  auto results = Evaluate(model, sequences, options, pool);
  EXPECT_TRUE(results.ok()) << results.status();
  return results.ok() ? *std::move(results) : std::vector<SequenceResult>();
}

// `actual` is OK and equals `expected` sequence by sequence: output,
// directions and states, each within TensorNear(`tolerance`, `relative`),
// which also compares empty shapes, so `actual` holds exactly the fields
// `expected` holds.
inline void ExpectSameResults(const DoneResult& actual,
                              const std::vector<SequenceResult>& expected,
                              float tolerance, bool relative) {
  ASSERT_TRUE(actual.ok()) << actual.status();
  ASSERT_EQ(actual->size(), expected.size());
  for (size_t s = 0; s < expected.size(); ++s) {
    SCOPED_TRACE(::testing::Message() << "sequence " << s);
    const SequenceResult& a = (*actual)[s];
    const SequenceResult& b = expected[s];
    EXPECT_TRUE(TensorNear(a.output, b.output, tolerance, relative))
        << "output";
    EXPECT_TRUE(TensorNear(a.forward, b.forward, tolerance, relative))
        << "forward";
    EXPECT_TRUE(TensorNear(a.backward, b.backward, tolerance, relative))
        << "backward";
    ASSERT_EQ(a.states.size(), b.states.size());
    for (size_t l = 0; l < a.states.size(); ++l) {
      ASSERT_EQ(a.states[l].size(), b.states[l].size());
      for (size_t k = 0; k < a.states[l].size(); ++k) {
        EXPECT_TRUE(
            TensorNear(a.states[l][k], b.states[l][k], tolerance, relative))
            << "layer " << l << " state " << k;
      }
    }
  }
}

}  // namespace biserve::testing
