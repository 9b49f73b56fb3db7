// UnbatchedScheduler: each request is evaluated on its own, first come
// first served, as soon as an executor thread is free.
//
// Executors call Evaluate, which spreads large requests over the shared
// evaluation pool and computes small ones on the executor itself.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "core/batching/batch_scheduler.h"
#include "core/batching/serving_observer.h"
#include "core/common/clock.h"
#include "core/common/mutex.h"
#include "core/common/thread_pool.h"

namespace biserve {

class UnbatchedScheduler final : public BatchScheduler {
 public:
  struct Options {
    // Threads that take requests from the queue and evaluate them, each
    // named biserve-exec.
    int num_executors = 2;
    // Requests waiting beyond this are refused with UNAVAILABLE.
    int max_queue_size = 1024;
    // Told of queueing and computing; not owned, may be null.
    ServingObserver* observer = nullptr;
    // Time, and every wait of the executors and of Drain. Not owned; must
    // outlive the scheduler. Null: the system clock. Tests put a fake one
    // here.
    Clock* clock = nullptr;
  };

  // INVALID_ARGUMENT unless both options are at least 1. `pool` is not
  // owned and must outlive the scheduler.
  static absl::StatusOr<std::unique_ptr<UnbatchedScheduler>> Create(
      Options options, ThreadPool* pool);

  // Answers queued tasks with UNAVAILABLE, lets running ones finish, joins.
  ~UnbatchedScheduler() override;

  absl::Status Schedule(std::unique_ptr<InferenceTask> task) override;
  void Drain(absl::Time deadline) override;
  int64_t QueueDepth() const override;

 private:
  UnbatchedScheduler(Options options, ThreadPool* pool);
  void ExecutorLoop();
  // The next task to run (counted as running), or null when stopping.
  std::unique_ptr<InferenceTask> TakeTask();
  // Counts `task`, now answered and freed, as no longer running.
  void TaskEnded();

  // Immutable after construction.
  const Options options_;
  ThreadPool* const pool_;
  Clock* const clock_;

  mutable Mutex mu_;
  CondVar work_cv_;  // queue_ non-empty or stopping_
  CondVar idle_cv_;  // queue_ empty and running_ == 0
  std::deque<std::unique_ptr<InferenceTask>> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::thread> executors_;
};

// Runs one task now: answers it without computing if it has expired or was
// cancelled (UnrunStatus), else evaluates it (and tells `observer`, if not
// null). Time from `clock` (null: the system's).
void RunTask(InferenceTask& task, ThreadPool& pool,
             ServingObserver* observer = nullptr, const Clock* clock = nullptr);

}  // namespace biserve
