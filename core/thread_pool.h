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
  };

  // INVALID_ARGUMENT unless 1 <= num_threads <= 1024.
  static absl::StatusOr<std::unique_ptr<ThreadPool>> Create(Options options);

  // Joins the workers after they finish the tasks already scheduled.
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return options_.num_threads; }

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
