// ThreadPool: the evaluation threads that run a batch's directions at once.
//
// Thread-safety: ParallelFor may be called from several threads at once; the
// tasks of all callers share the pool's threads.
#pragma once

#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace Eigen {
class ThreadPoolInterface;
}  // namespace Eigen

namespace biserve {

class ThreadPool {
 public:
  struct Options {
    // Threads that evaluate, counting the thread that calls ParallelFor:
    // 1 runs everything on the caller; n starts n - 1 workers.
    int num_threads = 1;
    // Work below this many FLOPs runs on the calling thread alone: handing
    // it to another thread and waking that costs tens of microseconds, more
    // than it saves. (biserve_bench W1, 0.5 MFLOP per batch, ran 3x slower
    // on two threads than on one.) Tests set 0 to force the parallel path.
    double min_parallel_flops = 2e6;
  };

  // INVALID_ARGUMENT unless 1 <= num_threads <= 1024.
  static absl::StatusOr<std::unique_ptr<ThreadPool>> Create(Options options);

  // Joins the workers after they finish the tasks already scheduled.
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return options_.num_threads; }
  // Whether work of `flops` is worth spreading over the pool.
  bool WorthParallel(double flops) const {
    return options_.num_threads > 1 && flops >= options_.min_parallel_flops;
  }

  // Runs fn(0) .. fn(n - 1), task 0 on the calling thread and the others on
  // the workers, and returns when all have finished.
  // REQUIRES: not called from inside a task of this pool (it would wait for
  // workers that may all be waiting too).
  void ParallelFor(int n, absl::FunctionRef<void(int)> fn);

 private:
  explicit ThreadPool(Options options);

  const Options options_;
  // Owned; null when num_threads == 1.
  std::unique_ptr<Eigen::ThreadPoolInterface> workers_;
};

}  // namespace biserve
