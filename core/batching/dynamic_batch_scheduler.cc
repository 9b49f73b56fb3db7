#include "core/batching/dynamic_batch_scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace biserve {

void EvaluateBatch(Batch& batch, ThreadPool& pool, EvalStats* stats) {
  // One request alone needs no merging.
  if (batch.size() == 1) {
    InferenceTask& task = *batch[0];
    task.done(Evaluate(*task.servable.model, task.sequences, task.options, pool,
                       stats));
    return;
  }
  std::vector<SequenceInput> sequences;
  EvalOptions options = batch[0]->options;
  for (const auto& task : batch) {
    sequences.insert(sequences.end(), task->sequences.begin(),
                     task->sequences.end());
    options.output |= task->options.output;
    options.directions |= task->options.directions;
    options.states |= task->options.states;
    options.allow_non_finite |= task->options.allow_non_finite;
  }
  absl::StatusOr<std::vector<SequenceResult>> results =
      Evaluate(*batch[0]->servable.model, sequences, options, pool, stats);
  if (!results.ok()) {
    for (auto& task : batch) task->done(results.status());
    return;
  }
  // With merge mode none, Evaluate gives the directions whatever was asked
  // (they are the model's outputs); otherwise only when asked for.
  const Model& model = *batch[0]->servable.model;
  const bool directions_always =
      model.bidirectional(model.last_bidirectional()).merge_mode ==
      MergeMode::kNone;
  size_t next = 0;
  for (auto& task : batch) {
    std::vector<SequenceResult> own;
    own.reserve(task->sequences.size());
    for (size_t i = 0; i < task->sequences.size(); ++i) {
      SequenceResult result = std::move((*results)[next++]);
      // Only what this request asked for (the batch computed the union).
      if (!task->options.output) result.output = Tensor();
      if (!task->options.directions && !directions_always) {
        result.forward = Tensor();
        result.backward = Tensor();
      }
      if (!task->options.states) result.states.clear();
      own.push_back(std::move(result));
    }
    task->done(std::move(own));
  }
}

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
      clock_(options_.clock != nullptr ? options_.clock : &real_clock_) {
  for (int i = 0; i < options_.num_batch_threads; ++i) {
    threads_.emplace_back([this] { BatchLoop(); });
  }
}

DynamicBatchScheduler::~DynamicBatchScheduler() {
  Drain(absl::InfinitePast());
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

absl::Status DynamicBatchScheduler::Schedule(
    std::unique_ptr<InferenceTask> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
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
  cv_.notify_all();
  return absl::OkStatus();
}

void DynamicBatchScheduler::Drain(absl::Time deadline) {
  std::vector<Queued> abandoned;
  {
    std::unique_lock<std::mutex> lock(mu_);
    accepting_ = false;
    draining_ = true;
    cv_.notify_all();
    while (queued_ > 0 || running_ > 0 || answering_ > 0) {
      if (deadline != absl::InfiniteFuture() && clock_->Now() >= deadline) {
        break;
      }
      clock_->WaitUntil(cv_, lock, deadline);
    }
    for (auto& [model, queue] : queues_) {
      for (Queued& q : queue.tasks) abandoned.push_back(std::move(q));
    }
    queues_.clear();
    queued_ = 0;
  }
  for (Queued& q : abandoned) {
    if (options_.observer != nullptr) {
      options_.observer->QueueDepthChanged(q.task->servable, -1);
    }
    q.task->done(absl::UnavailableError(
        "the server shut down before this request was computed; retry on "
        "another replica"));
  }
}

int64_t DynamicBatchScheduler::QueueDepth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_;
}

void DynamicBatchScheduler::DropDeadTasks(absl::Time now,
                                          std::vector<Queued>& dropped) {
  for (auto it = queues_.begin(); it != queues_.end();) {
    std::deque<Queued>& tasks = it->second.tasks;
    for (auto t = tasks.begin(); t != tasks.end();) {
      const InferenceTask& task = *t->task;
      if (now >= task.deadline || (task.is_cancelled && task.is_cancelled())) {
        dropped.push_back(std::move(*t));
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

void DynamicBatchScheduler::BatchLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (stopping_ && queued_ == 0) return;
    const absl::Time now = clock_->Now();
    std::vector<Queued> dropped;
    DropDeadTasks(now, dropped);
    absl::Time wake;
    auto picked = PickQueue(now, wake);
    Batch batch;
    if (picked != queues_.end()) {
      ModelQueue& queue = picked->second;
      std::vector<QueuedTaskInfo> infos;
      for (const Queued& q : queue.tasks) infos.push_back(q.info);
      std::vector<size_t> chosen = FormBatch(infos, queue.options, now);
      // Take the chosen tasks out, keeping the others in arrival order.
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
      ++running_;
    }
    if (dropped.empty() && batch.empty()) {
      clock_->WaitUntil(cv_, lock, wake);
      continue;
    }
    const bool answering = !dropped.empty();
    if (answering) ++answering_;  // Drain waits for their answers too

    lock.unlock();
    if (options_.observer != nullptr) {
      for (const Queued& q : dropped) {
        options_.observer->QueueDepthChanged(q.task->servable, -1);
        options_.observer->TaskDequeued(q.task->servable,
                                        now - q.task->enqueue_time);
      }
      for (const auto& task : batch) {
        options_.observer->QueueDepthChanged(task->servable, -1);
        options_.observer->TaskDequeued(task->servable,
                                        now - task->enqueue_time);
      }
    }
    for (Queued& q : dropped) {
      InferenceTask& task = *q.task;
      if (now >= task.deadline) {
        task.done(absl::DeadlineExceededError(
            absl::StrCat("the deadline expired after ",
                         absl::ToDoubleMilliseconds(now - task.enqueue_time),
                         " ms in the queue; the request was not computed")));
      } else {
        task.done(absl::CancelledError(
            "the request was cancelled before it was computed"));
      }
    }
    dropped.clear();
    const bool ran = !batch.empty();
    if (ran) {
      const ServableModel servable = batch[0]->servable;
      const int requests = static_cast<int>(batch.size());
      // Sizes from the tasks, for run_batch doubles; EvaluateBatch
      // overwrites them with what it measured.
      EvalStats stats;
      int64_t longest = 0;
      for (const auto& task : batch) {
        for (const SequenceInput& s : task->sequences) {
          ++stats.sequences;
          stats.real_steps += s.length;
          longest = std::max(longest, s.length);
        }
      }
      stats.computed_steps = stats.real_steps;
      stats.padded_steps = stats.sequences * longest;
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
    lock.lock();
    if (ran) --running_;
    if (answering) --answering_;
    // A finished batch can make other queues ready (an idle pool) or end a
    // drain; dropped tasks can too.
    cv_.notify_all();
  }
}

}  // namespace biserve
