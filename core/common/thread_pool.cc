#include "core/common/thread_pool.h"

#define EIGEN_USE_THREADS
#include <mutex>
#include <unsupported/Eigen/CXX11/ThreadPool>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/thread_name.h"

#ifdef BISERVE_OPENBLAS
extern "C" void openblas_set_num_threads(int num_threads);
extern "C" int openblas_get_parallel();  // 0: the serial build
#endif

namespace biserve {
namespace {

// Eigen's standard thread environment, with each worker named
// biserve-eval-N (N from 1; the caller of ParallelFor is task 0).
struct NamedThreadEnvironment : Eigen::StlThreadEnvironment {
  EnvThread* CreateThread(std::function<void()> f) {
    const int n = ++created;
    return new EnvThread([n, f = std::move(f)] {
      SetCurrentThreadName(absl::StrCat("biserve-eval-", n));
      f();
    });
  }
  int created = 0;  // Eigen creates its threads from one thread
};

}  // namespace

absl::StatusOr<std::unique_ptr<ThreadPool>> ThreadPool::Create(
    Options options) {
  if (options.num_threads < 1 || options.num_threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_threads must be in [1, 1024]; was ", options.num_threads));
  }
  return std::unique_ptr<ThreadPool>(new ThreadPool(options));
}

ThreadPool::ThreadPool(Options options) : options_(options) {
#ifdef BISERVE_OPENBLAS
  // One level of parallelism: GEMMs run on the thread that calls them (a
  // pool task), never on OpenBLAS' own threads. Process-wide and idempotent.
  static std::once_flag blas_once;
  std::call_once(blas_once, [] { openblas_set_num_threads(1); });
#endif
  if (options_.num_threads > 1) {
    workers_ = std::make_unique<Eigen::ThreadPoolTempl<NamedThreadEnvironment>>(
        options_.num_threads - 1);
  }
}

ThreadPool::~ThreadPool() = default;

void ThreadPool::ParallelFor(int n, absl::FunctionRef<void(int)> fn) {
  if (n <= 0) return;
  if (workers_ == nullptr || n == 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  Eigen::Barrier done(static_cast<unsigned int>(n - 1));
  for (int i = 1; i < n; ++i) {
    workers_->Schedule([&fn, &done, i] {
      fn(i);
      done.Notify();
    });
  }
  fn(0);
  done.Wait();
}

}  // namespace biserve
