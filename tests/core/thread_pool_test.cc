#include "core/common/thread_pool.h"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace biserve {
namespace {

TEST(ThreadPoolTest, RejectsZeroThreads) {
  auto pool = ThreadPool::Create({.num_threads = 0});
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ThreadPoolTest, RunsEveryTaskOnceForEveryThreadCount) {
  for (int threads : {1, 2, 4}) {
    auto pool = ThreadPool::Create({.num_threads = threads});
    ASSERT_TRUE(pool.ok());
    std::vector<std::atomic<int>> runs(9);
    (*pool)->ParallelFor(9, [&](int i) { runs[i]++; });
    for (auto& r : runs) EXPECT_EQ(r.load(), 1);
  }
}

// The name `thread` was given (pthread_setname_np); "" if it cannot be read.
std::string NameOf(pthread_t thread) {
  char name[16] = {};
  if (pthread_getname_np(thread, name, sizeof(name)) != 0) return "";
  return name;
}

TEST(ThreadPoolTest, WorkersAreNamedBiserveEval) {
  auto pool = *ThreadPool::Create({.num_threads = 3});
  std::vector<std::string> names(3);
  // Each task waits for the others to start, so that three threads run
  // them: the caller and both workers.
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  pool->ParallelFor(3, [&](int i) {
    names[i] = NameOf(pthread_self());
    std::unique_lock lock(mu);
    ++started;
    cv.notify_all();
    cv.wait(lock, [&] { return started == 3; });
  });
  EXPECT_NE(names[0].rfind("biserve-eval-", 0), 0u) << "the caller's own name";
  EXPECT_EQ(names[1].rfind("biserve-eval-", 0), 0u) << names[1];
  EXPECT_EQ(names[2].rfind("biserve-eval-", 0), 0u) << names[2];
  EXPECT_NE(names[1], names[2]);
}

TEST(ThreadPoolTest, OneThreadRunsOnTheCaller) {
  auto pool = *ThreadPool::Create({.num_threads = 1});
  std::thread::id seen;
  pool->ParallelFor(1, [&](int) { seen = std::this_thread::get_id(); });
  EXPECT_EQ(seen, std::this_thread::get_id());
}

TEST(ThreadPoolTest, TwoThreadsRunTwoTasksAtOnce) {
  // Each task waits for the other to start: this finishes only if both run
  // concurrently (deadlocks, and times out, if they were serialised).
  // (std::mutex rather than absl::Mutex: ThreadSanitizer sees through
  // pthreads, not through Debian's uninstrumented libabsl.)
  auto pool = *ThreadPool::Create({.num_threads = 2});
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  pool->ParallelFor(2, [&](int) {
    std::unique_lock lock(mu);
    ++started;
    cv.notify_all();
    cv.wait(lock, [&] { return started == 2; });
  });
  EXPECT_EQ(started, 2);
}

TEST(ThreadPoolTest, ConcurrentCallersShareThePool) {
  auto pool = *ThreadPool::Create({.num_threads = 3});
  std::atomic<int> total = 0;
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int k = 0; k < 50; ++k) pool->ParallelFor(2, [&](int) { total++; });
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 4 * 50 * 2);
}

}  // namespace
}  // namespace biserve
