// PuppetScheduler: a BatchScheduler that computes nothing until the test
// says so (as TF Serving's test_util/puppet_batch_scheduler.h), for tests
// of the code above a scheduler (services, the request path) that need a
// request to stay queued, or a full queue, at a point of their choosing.
//
// Thread-safety: every method may be called from any thread; tasks run on
// the thread that calls RunNext or RunAll.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "core/batching/batch_scheduler.h"
#include "core/batching/unrun_task.h"
#include "core/common/mutex.h"

namespace biserve::testing {

class PuppetScheduler final : public BatchScheduler {
 public:
  // `run` computes one task and answers it (RunTask on a pool, or a canned
  // answer).
  explicit PuppetScheduler(std::function<void(InferenceTask&)> run)
      : run_(std::move(run)) {}

  // Answers what is still queued, as a real scheduler's destructor does.
  ~PuppetScheduler() override { Drain(absl::InfinitePast()); }

  // Queues `task`; UNAVAILABLE after Drain, or the status given to
  // RefuseWith.
  absl::Status Schedule(std::unique_ptr<InferenceTask> task) override {
    MutexLock lock(&mu_);
    if (!accepting_) {
      return absl::UnavailableError(
          "the server is shutting down and accepts no new requests");
    }
    if (!refusal_.ok()) return refusal_;
    queue_.push_back(std::move(task));
    return absl::OkStatus();
  }

  // Nothing runs by itself, so nothing is waited for: stops accepting and
  // answers every queued task UNAVAILABLE at once.
  void Drain(absl::Time deadline) override {
    std::vector<std::unique_ptr<InferenceTask>> abandoned;
    {
      MutexLock lock(&mu_);
      accepting_ = false;
      for (auto& task : queue_) abandoned.push_back(std::move(task));
      queue_.clear();
    }
    AnswerAbandoned(abandoned, nullptr);
  }

  int64_t QueueDepth() const override {
    MutexLock lock(&mu_);
    return static_cast<int64_t>(queue_.size());
  }

  // Runs the `n` oldest queued tasks (fewer if fewer wait) on the calling
  // thread, in order; returns how many ran.
  int RunNext(int n) {
    int ran = 0;
    for (; ran < n; ++ran) {
      std::unique_ptr<InferenceTask> task;
      {
        MutexLock lock(&mu_);
        if (queue_.empty()) break;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      run_(*task);
    }
    return ran;
  }
  int RunAll() { return RunNext(INT32_MAX); }

  // Schedule refuses with `status` from now on (OK: accepts again), e.g.
  // UNAVAILABLE for a full queue.
  void RefuseWith(absl::Status status) {
    MutexLock lock(&mu_);
    refusal_ = std::move(status);
  }

 private:
  const std::function<void(InferenceTask&)> run_;

  mutable Mutex mu_;
  std::deque<std::unique_ptr<InferenceTask>> queue_ ABSL_GUARDED_BY(mu_);
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  absl::Status refusal_ ABSL_GUARDED_BY(mu_);
};

}  // namespace biserve::testing
