#include "core/unbatched_scheduler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace biserve {

void RunTask(InferenceTask& task, ThreadPool& pool, ServingObserver* observer) {
  if (task.is_cancelled && task.is_cancelled()) {
    task.done(absl::CancelledError(
        "the request was cancelled before it was computed"));
    return;
  }
  const absl::Time now = absl::Now();
  if (now >= task.deadline) {
    task.done(absl::DeadlineExceededError(absl::StrCat(
        "the deadline expired after ",
        absl::ToInt64Microseconds(now - task.enqueue_time) / 1000.0,
        " ms in the queue; the request was not computed")));
    return;
  }
  EvalStats stats;
  absl::StatusOr<std::vector<SequenceResult>> results = Evaluate(
      *task.servable.model, task.sequences, task.options, pool, &stats);
  if (observer != nullptr && results.ok()) {
    observer->BatchComputed(task.servable, 1, stats, absl::Now() - now);
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
    : options_(options), pool_(pool) {
  for (int i = 0; i < options_.num_executors; ++i) {
    executors_.emplace_back([this] { ExecutorLoop(); });
  }
}

UnbatchedScheduler::~UnbatchedScheduler() {
  Drain(absl::InfinitePast());
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : executors_) t.join();
}

absl::Status UnbatchedScheduler::Schedule(std::unique_ptr<InferenceTask> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!accepting_) {
      return absl::UnavailableError(
          "the server is shutting down and accepts no new requests");
    }
    if (static_cast<int>(queue_.size()) >= options_.max_queue_size) {
      return absl::UnavailableError(
          absl::StrCat("the request queue is full (", options_.max_queue_size,
                       " requests waiting); retry with backoff"));
    }
    task->enqueue_time = absl::Now();
    if (options_.observer != nullptr) {
      options_.observer->QueueDepthChanged(task->servable, 1);
    }
    queue_.push_back(std::move(task));
  }
  work_cv_.notify_one();
  return absl::OkStatus();
}

void UnbatchedScheduler::Drain(absl::Time deadline) {
  std::deque<std::unique_ptr<InferenceTask>> abandoned;
  {
    std::unique_lock<std::mutex> lock(mu_);
    accepting_ = false;
    auto idle = [this] { return queue_.empty() && running_ == 0; };
    if (deadline == absl::InfiniteFuture()) {
      idle_cv_.wait(lock, idle);
    } else if (deadline > absl::Now()) {
      idle_cv_.wait_until(lock, absl::ToChronoTime(deadline), idle);
    }
    abandoned.swap(queue_);
  }
  for (auto& task : abandoned) {
    if (options_.observer != nullptr) {
      options_.observer->QueueDepthChanged(task->servable, -1);
    }
    task->done(absl::UnavailableError(
        "the server shut down before this request was computed; retry on "
        "another replica"));
  }
}

int64_t UnbatchedScheduler::QueueDepth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(queue_.size());
}

void UnbatchedScheduler::ExecutorLoop() {
  while (true) {
    std::unique_ptr<InferenceTask> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [this] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    if (options_.observer != nullptr) {
      options_.observer->QueueDepthChanged(task->servable, -1);
      options_.observer->TaskDequeued(task->servable,
                                      absl::Now() - task->enqueue_time);
    }
    RunTask(*task, *pool_, options_.observer);
    task.reset();  // frees the request before the scheduler reports idle
    bool idle;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      idle = queue_.empty() && running_ == 0;
    }
    if (idle) idle_cv_.notify_all();
  }
}

}  // namespace biserve
