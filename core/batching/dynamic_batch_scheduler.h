// DynamicBatchScheduler: per-model queues whose requests are merged into
// packed batches by the policy of core/batching/batch_policy.h, and computed on
// batch threads.
//
// A batch is one Evaluate over the sequences of all its requests; packed
// evaluation does no padding work, and every sequence's result equals its
// result evaluated alone, so batching changes throughput, never results.
//
// Thread-safety: every method may be called from any thread. Lock
// discipline: mu_ guards the queues and counters; tasks' `done` callbacks
// and batch evaluation run outside it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "core/batching/batch_policy.h"
#include "core/batching/batch_scheduler.h"
#include "core/batching/evaluate_batch.h"
#include "core/batching/serving_observer.h"
#include "core/common/clock.h"
#include "core/common/mutex.h"
#include "core/common/thread_pool.h"

namespace biserve {

class DynamicBatchScheduler final : public BatchScheduler {
 public:
  struct Options {
    // Batches computed at the same time, each on a thread named
    // biserve-batch. Each batch already spreads over
    // the evaluation pool (its two directions run at once), so one per two
    // pool threads keeps the cores busy without oversubscribing them.
    int num_batch_threads = 1;
    // Time, and every wait of the batch threads and of Drain. Not owned;
    // must outlive the scheduler. Null: the system clock.
    Clock* clock = nullptr;
    // Computes one batch and answers each of its tasks exactly once. Null:
    // EvaluateBatch on the pool. Tests put a recording double here (the
    // observer's BatchComputed then gets empty EvalStats).
    std::function<void(Batch&)> run_batch;
    // Told of queueing and computing; not owned, may be null. Its
    // QueueDepthChanged(+1) runs under the scheduler's lock (it must not
    // call back into the scheduler); the rest outside it.
    ServingObserver* observer = nullptr;
  };

  // INVALID_ARGUMENT unless num_batch_threads >= 1 and a pool or a
  // run_batch is given. `pool` is not owned and must outlive the scheduler.
  static absl::StatusOr<std::unique_ptr<DynamicBatchScheduler>> Create(
      Options options, ThreadPool* pool);

  // Answers queued tasks with UNAVAILABLE, lets running batches finish,
  // joins the batch threads.
  ~DynamicBatchScheduler() override;

  // UNAVAILABLE when the model version's queue already holds its
  // max_queue_size requests (task->servable.batching), or when draining.
  absl::Status Schedule(std::unique_ptr<InferenceTask> task) override;
  // Stops accepting; batches everything queued at once, without waiting
  // for delays, until the queues are empty or `deadline` passes.
  void Drain(absl::Time deadline) override;
  int64_t QueueDepth() const override;

 private:
  struct Queued {
    std::unique_ptr<InferenceTask> task;
    QueuedTaskInfo info;
  };
  struct ModelQueue {
    BatchingOptions options;
    std::deque<Queued> tasks;
  };
  using QueueMap = std::map<const Model*, ModelQueue>;

  // A task leaving its queue uncomputed, and its answer.
  struct Unrun {
    std::unique_ptr<InferenceTask> task;
    absl::Status status;
  };
  // What a batch thread takes from the queues in one go: the tasks to
  // answer uncomputed and the batch to compute, either may be empty.
  struct Work {
    absl::Time now;
    absl::Time wake;  // when to look again if there is nothing to do
    std::vector<Unrun> dropped;
    Batch batch;
  };

  DynamicBatchScheduler(Options options, ThreadPool* pool);
  void BatchLoop();
  // Takes work and does it, outside mu_, or waits for some.
  void Step() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Work TakeWork() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves cancelled and expired tasks out of the queues into `dropped`.
  void DropDeadTasks(absl::Time now, std::vector<Unrun>& dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The queue to run now, or end() (and when to look again in `wake`).
  QueueMap::iterator PickQueue(absl::Time now, absl::Time& wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the batch FormBatch chooses out of `picked`, keeping the other
  // tasks in arrival order.
  Batch TakeBatch(QueueMap::iterator picked, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the observer that the work's tasks left their queues.
  void ReportDequeued(const Work& work) const;
  // Computes `batch` (run_batch or EvaluateBatch), which answers its tasks,
  // frees it, and tells the observer.
  void RunBatch(Batch& batch) const;

  // Immutable after construction.
  const Options options_;
  ThreadPool* const pool_;
  Clock* const clock_;

  mutable Mutex mu_;
  CondVar cv_;  // queues changed, a batch ended, stopping
  QueueMap queues_ ABSL_GUARDED_BY(mu_);
  int64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // batches being computed
  // Batch threads answering dropped (cancelled, expired) tasks outside mu_:
  // those tasks have left queued_ but are not done yet.
  int answering_ ABSL_GUARDED_BY(mu_) = 0;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::thread> threads_;
};

}  // namespace biserve
