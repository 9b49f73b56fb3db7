#include "core/batching/dynamic_batch_scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/batching/unrun_task.h"
#include "core/common/thread_name.h"

namespace biserve {

absl::StatusOr<std::unique_ptr<DynamicBatchScheduler>>
DynamicBatchScheduler::Create(Options options, ThreadPool* pool) {
  if (options.num_batch_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_batch_threads must be at least 1; was ",
                     options.num_batch_threads));
  }
  if (pool == nullptr && !options.run_batch) {
    return absl::InvalidArgumentError("give a pool or a run_batch function");
  }
  return std::unique_ptr<DynamicBatchScheduler>(
      new DynamicBatchScheduler(std::move(options), pool));
}

DynamicBatchScheduler::DynamicBatchScheduler(Options options, ThreadPool* pool)
    : options_(std::move(options)),
      pool_(pool),
      clock_(options_.clock != nullptr ? options_.clock : &SystemClock()) {
  for (int i = 0; i < options_.num_batch_threads; ++i) {
    threads_.emplace_back([this] { BatchLoop(); });
  }
}

DynamicBatchScheduler::~DynamicBatchScheduler() {
  Drain(absl::InfinitePast());
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  for (std::thread& t : threads_) t.join();
}

absl::Status DynamicBatchScheduler::Schedule(
    std::unique_ptr<InferenceTask> task) {
  {
    MutexLock lock(&mu_);
    if (!accepting_) {
      return absl::UnavailableError(
          "the server is shutting down and accepts no new requests");
    }
    ModelQueue& queue = queues_[task->servable.model.get()];
    if (queue.tasks.empty()) queue.options = task->servable.batching;
    if (static_cast<int>(queue.tasks.size()) >= queue.options.max_queue_size) {
      if (queue.tasks.empty()) queues_.erase(task->servable.model.get());
      return absl::UnavailableError(absl::StrCat(
          "the queue of model '", task->servable.name, "' version ",
          task->servable.version, " is full (", queue.options.max_queue_size,
          " requests waiting); retry with backoff"));
    }
    task->enqueue_time = clock_->Now();
    QueuedTaskInfo info{task->enqueue_time,
                        static_cast<int>(task->sequences.size()),
                        task->total_steps()};
    if (options_.observer != nullptr) {
      options_.observer->QueueDepthChanged(task->servable, 1);
    }
    queue.tasks.push_back(Queued{std::move(task), info});
    ++queued_;
  }
  cv_.SignalAll();
  return absl::OkStatus();
}

void DynamicBatchScheduler::Drain(absl::Time deadline) {
  std::vector<std::unique_ptr<InferenceTask>> abandoned;
  {
    MutexLock lock(&mu_);
    accepting_ = false;
    draining_ = true;
    cv_.SignalAll();
    while (queued_ > 0 || running_ > 0 || answering_ > 0) {
      if (deadline != absl::InfiniteFuture() && clock_->Now() >= deadline) {
        break;
      }
      clock_->WaitUntil(cv_, mu_, deadline);
    }
    for (auto& [model, queue] : queues_) {
      for (Queued& q : queue.tasks) abandoned.push_back(std::move(q.task));
    }
    queues_.clear();
    queued_ = 0;
  }
  AnswerAbandoned(abandoned, options_.observer);
}

int64_t DynamicBatchScheduler::QueueDepth() const {
  MutexLock lock(&mu_);
  return queued_;
}

void DynamicBatchScheduler::DropDeadTasks(absl::Time now,
                                          std::vector<Unrun>& dropped) {
  for (auto it = queues_.begin(); it != queues_.end();) {
    std::deque<Queued>& tasks = it->second.tasks;
    for (auto t = tasks.begin(); t != tasks.end();) {
      if (absl::Status status = UnrunStatus(*t->task, now); !status.ok()) {
        dropped.push_back(Unrun{std::move(t->task), std::move(status)});
        t = tasks.erase(t);
        --queued_;
      } else {
        ++t;
      }
    }
    it = tasks.empty() ? queues_.erase(it) : std::next(it);
  }
}

DynamicBatchScheduler::QueueMap::iterator DynamicBatchScheduler::PickQueue(
    absl::Time now, absl::Time& wake) {
  wake = absl::InfiniteFuture();
  auto best = queues_.end();
  const bool idle = running_ == 0 || draining_;
  std::vector<QueuedTaskInfo> infos;
  for (auto it = queues_.begin(); it != queues_.end(); ++it) {
    infos.clear();
    for (const Queued& q : it->second.tasks) {
      infos.push_back(q.info);
      wake = std::min(wake, q.task->deadline);
    }
    if (QueueReady(infos, it->second.options, now, idle)) {
      if (best == queues_.end() ||
          infos.front().enqueued < best->second.tasks.front().info.enqueued) {
        best = it;
      }
    } else {
      wake = std::min(wake, QueueDeadline(infos, it->second.options));
    }
  }
  return best;
}

Batch DynamicBatchScheduler::TakeBatch(QueueMap::iterator picked,
                                       absl::Time now) {
  ModelQueue& queue = picked->second;
  std::vector<QueuedTaskInfo> infos;
  for (const Queued& q : queue.tasks) infos.push_back(q.info);
  const std::vector<size_t> chosen = FormBatch(infos, queue.options, now);
  Batch batch;
  std::deque<Queued> rest;
  size_t c = 0;
  for (size_t i = 0; i < queue.tasks.size(); ++i) {
    if (c < chosen.size() && chosen[c] == i) {
      batch.push_back(std::move(queue.tasks[i].task));
      ++c;
    } else {
      rest.push_back(std::move(queue.tasks[i]));
    }
  }
  queue.tasks.swap(rest);
  queued_ -= static_cast<int64_t>(batch.size());
  if (queue.tasks.empty()) queues_.erase(picked);
  return batch;
}

DynamicBatchScheduler::Work DynamicBatchScheduler::TakeWork() {
  Work work;
  work.now = clock_->Now();
  DropDeadTasks(work.now, work.dropped);
  auto picked = PickQueue(work.now, work.wake);
  if (picked != queues_.end()) work.batch = TakeBatch(picked, work.now);
  return work;
}

void DynamicBatchScheduler::ReportDequeued(const Work& work) const {
  ServingObserver* const observer = options_.observer;
  if (observer == nullptr) return;
  auto report = [&](const InferenceTask& task) {
    observer->QueueDepthChanged(task.servable, -1);
    observer->TaskDequeued(task.servable, work.now - task.enqueue_time);
  };
  for (const Unrun& unrun : work.dropped) report(*unrun.task);
  for (const auto& task : work.batch) report(*task);
}

void DynamicBatchScheduler::RunBatch(Batch& batch) const {
  const ServableModel servable = batch[0]->servable;
  const int requests = static_cast<int>(batch.size());
  EvalStats stats;
  const absl::Time start = clock_->Now();
  if (options_.run_batch) {
    options_.run_batch(batch);
  } else {
    EvaluateBatch(batch, *pool_, &stats);
  }
  const absl::Duration elapsed = clock_->Now() - start;
  batch.clear();  // frees the requests before the batch counts as done
  if (options_.observer != nullptr) {
    options_.observer->BatchComputed(servable, requests, stats, elapsed);
  }
}

void DynamicBatchScheduler::Step() {
  Work work = TakeWork();
  const bool answering = !work.dropped.empty();
  const bool running = !work.batch.empty();
  if (!answering && !running) {
    clock_->WaitUntil(cv_, mu_, work.wake);
    return;
  }
  // Drain waits for these answers and this batch too.
  if (answering) ++answering_;
  if (running) ++running_;
  mu_.Unlock();
  ReportDequeued(work);
  for (Unrun& unrun : work.dropped) unrun.task->done(std::move(unrun.status));
  work.dropped.clear();
  if (running) RunBatch(work.batch);
  mu_.Lock();
  if (running) --running_;
  if (answering) --answering_;
  // A finished batch can make other queues ready (an idle pool) or end a
  // drain; dropped tasks can too.
  cv_.SignalAll();
}

void DynamicBatchScheduler::BatchLoop() {
  SetCurrentThreadName("biserve-batch");
  mu_.Lock();
  while (!stopping_ || queued_ > 0) Step();
  mu_.Unlock();
}

}  // namespace biserve
