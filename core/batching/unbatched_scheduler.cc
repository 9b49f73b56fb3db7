#include "core/batching/unbatched_scheduler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/batching/unrun_task.h"
#include "core/common/thread_name.h"

namespace biserve {

void RunTask(InferenceTask& task, ThreadPool& pool, ServingObserver* observer,
             const Clock* clock) {
  if (clock == nullptr) clock = &SystemClock();
  const absl::Time now = clock->Now();
  if (absl::Status status = UnrunStatus(task, now); !status.ok()) {
    task.done(std::move(status));
    return;
  }
  EvalStats stats;
  absl::StatusOr<std::vector<SequenceResult>> results = Evaluate(
      *task.servable.model, task.sequences, task.options, pool, &stats);
  if (observer != nullptr && results.ok()) {
    observer->BatchComputed(task.servable, 1, stats, clock->Now() - now);
  }
  task.done(std::move(results));
}

absl::StatusOr<std::unique_ptr<UnbatchedScheduler>> UnbatchedScheduler::Create(
    Options options, ThreadPool* pool) {
  if (options.num_executors < 1 || options.max_queue_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_executors and max_queue_size must be at least 1; were ",
        options.num_executors, " and ", options.max_queue_size));
  }
  if (pool == nullptr) return absl::InvalidArgumentError("pool is null");
  return std::unique_ptr<UnbatchedScheduler>(
      new UnbatchedScheduler(options, pool));
}

UnbatchedScheduler::UnbatchedScheduler(Options options, ThreadPool* pool)
    : options_(options),
      pool_(pool),
      clock_(options_.clock != nullptr ? options_.clock : &SystemClock()) {
  for (int i = 0; i < options_.num_executors; ++i) {
    executors_.emplace_back([this] { ExecutorLoop(); });
  }
}

UnbatchedScheduler::~UnbatchedScheduler() {
  Drain(absl::InfinitePast());
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_cv_.SignalAll();
  for (std::thread& t : executors_) t.join();
}

absl::Status UnbatchedScheduler::Schedule(std::unique_ptr<InferenceTask> task) {
  {
    MutexLock lock(&mu_);
    if (!accepting_) {
      return absl::UnavailableError(
          "the server is shutting down and accepts no new requests");
    }
    if (static_cast<int>(queue_.size()) >= options_.max_queue_size) {
      return absl::UnavailableError(
          absl::StrCat("the request queue is full (", options_.max_queue_size,
                       " requests waiting); retry with backoff"));
    }
    task->enqueue_time = clock_->Now();
    if (options_.observer != nullptr) {
      options_.observer->QueueDepthChanged(task->servable, 1);
    }
    queue_.push_back(std::move(task));
  }
  work_cv_.Signal();
  return absl::OkStatus();
}

void UnbatchedScheduler::Drain(absl::Time deadline) {
  std::vector<std::unique_ptr<InferenceTask>> abandoned;
  {
    MutexLock lock(&mu_);
    accepting_ = false;
    // Queued tasks count as much as running ones: every accepted task is
    // computed before Drain returns, unless the deadline comes first.
    while (!queue_.empty() || running_ > 0) {
      if (deadline != absl::InfiniteFuture() && clock_->Now() >= deadline) {
        break;
      }
      clock_->WaitUntil(idle_cv_, mu_, deadline);
    }
    for (auto& task : queue_) abandoned.push_back(std::move(task));
    queue_.clear();
  }
  AnswerAbandoned(abandoned, options_.observer);
}

int64_t UnbatchedScheduler::QueueDepth() const {
  MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

std::unique_ptr<InferenceTask> UnbatchedScheduler::TakeTask() {
  MutexLock lock(&mu_);
  while (queue_.empty() && !stopping_) {
    clock_->WaitUntil(work_cv_, mu_, absl::InfiniteFuture());
  }
  if (queue_.empty()) return nullptr;  // stopping
  std::unique_ptr<InferenceTask> task = std::move(queue_.front());
  queue_.pop_front();
  ++running_;
  return task;
}

void UnbatchedScheduler::TaskEnded() {
  bool idle;
  {
    MutexLock lock(&mu_);
    --running_;
    idle = queue_.empty() && running_ == 0;
  }
  if (idle) idle_cv_.SignalAll();
}

void UnbatchedScheduler::ExecutorLoop() {
  SetCurrentThreadName("biserve-exec");
  while (std::unique_ptr<InferenceTask> task = TakeTask()) {
    if (options_.observer != nullptr) {
      options_.observer->QueueDepthChanged(task->servable, -1);
      options_.observer->TaskDequeued(task->servable,
                                      clock_->Now() - task->enqueue_time);
    }
    RunTask(*task, *pool_, options_.observer, clock_);
    task.reset();  // frees the request before the scheduler reports idle
    TaskEnded();
  }
}

}  // namespace biserve
