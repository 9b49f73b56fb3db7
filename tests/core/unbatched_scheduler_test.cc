#include "core/batching/unbatched_scheduler.h"

#include <atomic>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/notification.h"
#include "tests/support/random_model.h"
#include "tests/support/scheduler_test_util.h"
#include "tests/support/test_util.h"

namespace biserve {
namespace {

using testing::Completions;
using testing::DoneResult;
using ::testing::ElementsAre;
using testing::EvaluateAlone;
using testing::ExpectSameResults;
using testing::Gate;
using ::testing::HasSubstr;
using testing::kBound;
using testing::RandomFeatureModelSpec;
using testing::RandomValues;
using testing::TensorNear;

class UnbatchedSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pool = ThreadPool::Create({.num_threads = 1});
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    std::mt19937 rng(11);
    auto model = Model::Create(RandomFeatureModelSpec(rng));
    ASSERT_TRUE(model.ok()) << model.status();
    servable_.name = "m";
    servable_.version = 1;
    servable_.model = *model;
  }

  void TearDown() override {
    // A test that failed half-way may leave a gate closed: open it, so that
    // the scheduler's destructor does not wait for the bound.
    for (Gate& gate : gates_) gate.Release();
    scheduler_.reset();
  }

  // A gate that outlives the scheduler.
  Gate& NewGate() { return gates_.emplace_back(); }

  // `clock`: the system's unless given (it must outlive the scheduler).
  void MakeScheduler(int num_executors, int max_queue_size,
                     Clock* clock = nullptr) {
    auto scheduler =
        UnbatchedScheduler::Create({.num_executors = num_executors,
                                    .max_queue_size = max_queue_size,
                                    .clock = clock},
                                   pool_.get());
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = *std::move(scheduler);
  }

  // A task `id` with one sequence of `length` steps. With `valid` false its
  // features are one value short, so computing it would give
  // INVALID_ARGUMENT: an answer other than that proves it was not computed.
  std::unique_ptr<InferenceTask> NewTask(int id, int64_t length = 3,
                                         bool valid = true) {
    const int64_t count =
        length * servable_.model->input_dim() - (valid ? 0 : 1);
    const std::vector<float>& features =
        storage_.emplace_back(RandomValues(rng_, count));
    auto task = std::make_unique<InferenceTask>();
    task->servable = servable_;
    SequenceInput input;
    input.length = length;
    input.features = features;
    task->sequences.push_back(input);
    task->done = completions_.Callback(id);
    return task;
  }

  std::unique_ptr<InferenceTask> GateTask(int id, Gate& gate) {
    std::unique_ptr<InferenceTask> task = NewTask(id);
    task->is_cancelled = gate.Blocker();
    return task;
  }

  // Schedules task `id` and holds its executor at a new gate, once the
  // executor is inside it (so it has left the queue).
  Gate& ScheduleHeld(int id) {
    Gate& gate = NewGate();
    EXPECT_TRUE(scheduler_->Schedule(GateTask(id, gate)).ok());
    EXPECT_TRUE(gate.WaitUntilEntered());
    return gate;
  }

  // What Evaluate gives for `task`'s sequences, computed directly.
  std::vector<SequenceResult> Direct(const InferenceTask& task) {
    return EvaluateAlone(*servable_.model, task.sequences, task.options,
                         *pool_);
  }

  // Declared first so that they outlive the scheduler.
  std::mt19937 rng_{3};
  std::deque<std::vector<float>> storage_;  // the tasks' borrowed features
  std::deque<Gate> gates_;
  testing::FakeClock clock_;
  testing::ParkingClock parking_clock_{&clock_};
  Completions completions_;
  std::unique_ptr<ThreadPool> pool_;
  ServableModel servable_;
  std::unique_ptr<UnbatchedScheduler> scheduler_;
};

TEST(UnbatchedSchedulerCreateTest, RejectsNonPositiveOptionsAndNullPool) {
  auto pool = ThreadPool::Create({.num_threads = 1});
  ASSERT_TRUE(pool.ok());
  auto no_executors = UnbatchedScheduler::Create(
      {.num_executors = 0, .max_queue_size = 4}, pool->get());
  EXPECT_EQ(no_executors.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_executors.status().message()),
              HasSubstr("were 0 and 4"));
  auto no_queue = UnbatchedScheduler::Create(
      {.num_executors = 2, .max_queue_size = 0}, pool->get());
  EXPECT_EQ(no_queue.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_queue.status().message()),
              HasSubstr("were 2 and 0"));
  auto no_pool = UnbatchedScheduler::Create({}, nullptr);
  EXPECT_EQ(no_pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_pool.status().message()),
              HasSubstr("pool is null"));
}

TEST_F(UnbatchedSchedulerTest, ResultsEqualADirectEvaluate) {
  MakeScheduler(2, 64);
  constexpr int kTasks = 12;
  std::vector<std::vector<SequenceResult>> expected;
  for (int id = 0; id < kTasks; ++id) {
    std::unique_ptr<InferenceTask> task = NewTask(id, 1 + id % 5);
    // A second sequence and every output, so that all of them are compared.
    const int64_t length = 2 + id % 3;
    const std::vector<float>& more = storage_.emplace_back(
        RandomValues(rng_, length * servable_.model->input_dim()));
    task->sequences.push_back(SequenceInput{length, more, {}, {}});
    task->options.directions = true;
    task->options.states = true;
    expected.push_back(Direct(*task));
    ASSERT_TRUE(scheduler_->Schedule(std::move(task)).ok());
  }
  ASSERT_TRUE(completions_.WaitForCount(kTasks));
  for (int id = 0; id < kTasks; ++id) {
    SCOPED_TRACE(id);
    ExpectSameResults(completions_.ResultOf(id), expected[id],
                      /*tolerance=*/0, /*relative=*/false);
  }
}

TEST_F(UnbatchedSchedulerTest, DoneRunsExactlyOncePerAcceptedTask) {
  MakeScheduler(3, 256);
  constexpr int kTasks = 100;
  for (int id = 0; id < kTasks; ++id) {
    // A mix of tasks answered by computing, by error, by cancellation and
    // by deadline.
    std::unique_ptr<InferenceTask> task = NewTask(id, 2, id % 4 != 1);
    if (id % 4 == 2) task->is_cancelled = [] { return true; };
    if (id % 4 == 3) task->deadline = absl::InfinitePast();
    ASSERT_TRUE(scheduler_->Schedule(std::move(task)).ok());
  }
  ASSERT_TRUE(completions_.WaitForCount(kTasks));
  scheduler_.reset();  // nothing may answer a task a second time
  EXPECT_EQ(completions_.Count(), kTasks);
  for (int id = 0; id < kTasks; ++id) {
    EXPECT_EQ(completions_.CallsFor(id), 1) << "task " << id;
  }
  EXPECT_TRUE(completions_.StatusOf(0).ok());
  EXPECT_EQ(completions_.StatusOf(1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(completions_.StatusOf(2).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(completions_.StatusOf(3).code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(UnbatchedSchedulerTest, OneExecutorAnswersInArrivalOrder) {
  MakeScheduler(1, 64);
  Gate& gate = ScheduleHeld(0);
  for (int id = 1; id <= 5; ++id) {
    ASSERT_TRUE(scheduler_->Schedule(NewTask(id)).ok());
  }
  gate.Release();
  ASSERT_TRUE(completions_.WaitForCount(6));
  EXPECT_THAT(completions_.Order(), ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST_F(UnbatchedSchedulerTest, ExecutorsComputeTasksAtTheSameTime) {
  MakeScheduler(2, 64);
  Gate& first = NewGate();
  Gate& second = NewGate();
  ASSERT_TRUE(scheduler_->Schedule(GateTask(0, first)).ok());
  ASSERT_TRUE(scheduler_->Schedule(GateTask(1, second)).ok());
  // Both are inside a task before either is released.
  EXPECT_TRUE(first.WaitUntilEntered());
  EXPECT_TRUE(second.WaitUntilEntered());
  first.Release();
  second.Release();
  ASSERT_TRUE(completions_.WaitForCount(2));
  EXPECT_TRUE(completions_.StatusOf(0).ok());
  EXPECT_TRUE(completions_.StatusOf(1).ok());
}

TEST_F(UnbatchedSchedulerTest, QueueDepthCountsTasksNotYetStarted) {
  MakeScheduler(1, 64);
  EXPECT_EQ(scheduler_->QueueDepth(), 0);
  Gate& gate = ScheduleHeld(0);
  EXPECT_EQ(scheduler_->QueueDepth(), 0);  // running, not queued
  ASSERT_TRUE(scheduler_->Schedule(NewTask(1)).ok());
  ASSERT_TRUE(scheduler_->Schedule(NewTask(2)).ok());
  EXPECT_EQ(scheduler_->QueueDepth(), 2);
  gate.Release();
  ASSERT_TRUE(completions_.WaitForCount(3));
  EXPECT_EQ(scheduler_->QueueDepth(), 0);
}

TEST_F(UnbatchedSchedulerTest, FullQueueRefusesWithUnavailableAndNeverAnswers) {
  MakeScheduler(1, 2);
  Gate& gate = ScheduleHeld(0);  // task 0 has left the queue
  ASSERT_TRUE(scheduler_->Schedule(NewTask(1)).ok());
  ASSERT_TRUE(scheduler_->Schedule(NewTask(2)).ok());

  absl::Status refused = scheduler_->Schedule(NewTask(3));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("queue is full (2 requests"));
  EXPECT_EQ(scheduler_->QueueDepth(), 2);

  gate.Release();
  ASSERT_TRUE(completions_.WaitForCount(3));
  scheduler_.reset();  // joins: every answer that will ever come has come
  EXPECT_EQ(completions_.CallsFor(3), 0);
  EXPECT_EQ(completions_.Count(), 3);
}

TEST_F(UnbatchedSchedulerTest, QueueAcceptsAgainOnceATaskLeavesIt) {
  MakeScheduler(1, 1);
  Gate& gate = ScheduleHeld(0);
  ASSERT_TRUE(scheduler_->Schedule(NewTask(1)).ok());
  EXPECT_EQ(scheduler_->Schedule(NewTask(2)).code(),
            absl::StatusCode::kUnavailable);
  gate.Release();
  ASSERT_TRUE(completions_.WaitForCount(2));
  EXPECT_TRUE(scheduler_->Schedule(NewTask(3)).ok());
  ASSERT_TRUE(completions_.WaitForCount(3));
  EXPECT_TRUE(completions_.StatusOf(3).ok());
}

TEST_F(UnbatchedSchedulerTest, InvalidSequencesAreAnsweredInvalidArgument) {
  // The control for the two tests below: computing this task fails so.
  MakeScheduler(1, 8);
  ASSERT_TRUE(scheduler_->Schedule(NewTask(0, 3, /*valid=*/false)).ok());
  ASSERT_TRUE(completions_.WaitForCount(1));
  EXPECT_EQ(completions_.StatusOf(0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(completions_.StatusOf(0).message()),
              HasSubstr("sequences[0]: features"));
}

TEST_F(UnbatchedSchedulerTest, CancelledTaskIsAnsweredCancelledUncomputed) {
  MakeScheduler(1, 8);
  std::unique_ptr<InferenceTask> task = NewTask(0, 3, /*valid=*/false);
  task->is_cancelled = [] { return true; };
  ASSERT_TRUE(scheduler_->Schedule(std::move(task)).ok());
  ASSERT_TRUE(completions_.WaitForCount(1));
  // Computing it would have given INVALID_ARGUMENT.
  EXPECT_EQ(completions_.StatusOf(0).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(completions_.CallsFor(0), 1);
}

TEST_F(UnbatchedSchedulerTest, TaskCancelledWhileQueuedIsNotComputed) {
  MakeScheduler(1, 8);
  Gate& gate = ScheduleHeld(0);
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<InferenceTask> task = NewTask(1, 3, /*valid=*/false);
  task->is_cancelled = [cancelled] { return cancelled->load(); };
  ASSERT_TRUE(scheduler_->Schedule(std::move(task)).ok());
  cancelled->store(true);  // the client goes away while the task waits
  gate.Release();
  ASSERT_TRUE(completions_.WaitForCount(2));
  EXPECT_EQ(completions_.StatusOf(1).code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(completions_.StatusOf(1).message()),
              HasSubstr("cancelled before it was computed"));
}

TEST_F(UnbatchedSchedulerTest, ExpiredDeadlineIsDeadlineExceededUncomputed) {
  MakeScheduler(1, 8);
  std::unique_ptr<InferenceTask> task = NewTask(0, 3, /*valid=*/false);
  task->deadline = absl::Now() - absl::Seconds(1);
  ASSERT_TRUE(scheduler_->Schedule(std::move(task)).ok());
  ASSERT_TRUE(completions_.WaitForCount(1));
  // Computing it would have given INVALID_ARGUMENT.
  EXPECT_EQ(completions_.StatusOf(0).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(completions_.StatusOf(0).message()),
              HasSubstr("in the queue; the request was not computed"));
}

TEST_F(UnbatchedSchedulerTest, DeadlinePassingWhileQueuedIsDeadlineExceeded) {
  MakeScheduler(1, 8, &clock_);
  Gate& gate = ScheduleHeld(0);
  std::unique_ptr<InferenceTask> task = NewTask(1, 3, /*valid=*/false);
  task->deadline = clock_.Now() + absl::Milliseconds(20);
  ASSERT_TRUE(scheduler_->Schedule(std::move(task)).ok());
  // The deadline passes while the executor is held.
  clock_.Advance(absl::Milliseconds(20));
  gate.Release();
  ASSERT_TRUE(completions_.WaitForCount(2));
  EXPECT_TRUE(completions_.StatusOf(0).ok());
  EXPECT_EQ(completions_.StatusOf(1).code(),
            absl::StatusCode::kDeadlineExceeded);
}

// As the batching scheduler answers (UnrunStatus), and as the server counts
// a computed request whose deadline passed.
TEST_F(UnbatchedSchedulerTest, TheDeadlineIsCheckedBeforeCancellation) {
  MakeScheduler(1, 8);
  std::unique_ptr<InferenceTask> task = NewTask(0);
  task->is_cancelled = [] { return true; };
  task->deadline = absl::InfinitePast();
  ASSERT_TRUE(scheduler_->Schedule(std::move(task)).ok());
  ASSERT_TRUE(completions_.WaitForCount(1));
  EXPECT_EQ(completions_.StatusOf(0).code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(UnbatchedSchedulerTest, DrainWaitsForQueuedAndRunningTasksToComplete) {
  MakeScheduler(1, 8);
  Gate& gate = ScheduleHeld(0);
  for (int id = 1; id <= 3; ++id) {
    ASSERT_TRUE(scheduler_->Schedule(NewTask(id)).ok());
  }
  testing::Notification drained;
  std::thread drainer([&] {
    scheduler_->Drain(absl::InfiniteFuture());
    drained.Notify();
  });
  // Drain cannot return while task 0 runs.
  EXPECT_FALSE(drained.HasBeenNotified());
  gate.Release();
  EXPECT_TRUE(drained.WaitForNotificationWithTimeout(kBound));
  drainer.join();
  // Every task was computed, none abandoned.
  EXPECT_EQ(completions_.Count(), 4);
  for (int id = 0; id <= 3; ++id) {
    EXPECT_TRUE(completions_.StatusOf(id).ok()) << id;
    EXPECT_EQ(completions_.CallsFor(id), 1) << id;
  }
  EXPECT_EQ(scheduler_->QueueDepth(), 0);
}

TEST_F(UnbatchedSchedulerTest,
       DrainComputesEveryQueuedTaskBeforeReturningNotOnlyRunningOnes) {
  // Tasks queued that no executor has taken yet (it has not woken since
  // they came), none running: Drain must still have every one computed
  // and answered before it returns. A Drain that waited only for running
  // tasks returned at once here and answered them UNAVAILABLE.
  Gate& parked = NewGate();
  parking_clock_.ParkNextWait(&parked);
  MakeScheduler(1, 8, &parking_clock_);
  // The only executor, idle, waits for work on the clock: held there.
  ASSERT_TRUE(parked.WaitUntilEntered());
  for (int id = 1; id <= 4; ++id) {
    ASSERT_TRUE(scheduler_->Schedule(NewTask(id)).ok());
  }
  EXPECT_EQ(scheduler_->QueueDepth(), 4);

  testing::Notification drained;
  int answered_when_drained = -1;
  const int64_t waits = clock_.waits();
  std::thread drainer([&] {
    scheduler_->Drain(absl::InfiniteFuture());
    answered_when_drained = completions_.Count();
    drained.Notify();
  });
  // Either Drain returns, or it waits on the clock (the executor is
  // parked, not counted).
  ASSERT_TRUE(testing::Eventually(
      [&] { return drained.HasBeenNotified() || clock_.waits() > waits; }));
  EXPECT_FALSE(drained.HasBeenNotified())
      << "Drain returned with 4 tasks queued and none computed";
  parked.Release();
  ASSERT_TRUE(drained.WaitForNotificationWithTimeout(kBound));
  drainer.join();
  EXPECT_EQ(answered_when_drained, 4);
  for (int id = 1; id <= 4; ++id) {
    EXPECT_TRUE(completions_.StatusOf(id).ok())
        << id << ": " << completions_.StatusOf(id);
    EXPECT_EQ(completions_.CallsFor(id), 1) << id;
  }
  EXPECT_EQ(scheduler_->QueueDepth(), 0);
}

TEST_F(UnbatchedSchedulerTest,
       DrainAtItsDeadlineAnswersQueuedTasksUnavailable) {
  MakeScheduler(1, 8);
  Gate& gate = ScheduleHeld(0);
  ASSERT_TRUE(scheduler_->Schedule(NewTask(1)).ok());
  ASSERT_TRUE(scheduler_->Schedule(NewTask(2)).ok());

  // Task 0 holds the only executor, so the deadline passes with 1 and 2
  // still queued.
  scheduler_->Drain(absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(completions_.Count(), 2);
  for (int id : {1, 2}) {
    EXPECT_EQ(completions_.StatusOf(id).code(), absl::StatusCode::kUnavailable)
        << id;
    EXPECT_THAT(std::string(completions_.StatusOf(id).message()),
                HasSubstr("shut down before this request was computed"));
  }
  EXPECT_EQ(scheduler_->QueueDepth(), 0);
  EXPECT_EQ(completions_.CallsFor(0), 0);  // still running

  // The running task finishes afterwards, and is answered once.
  gate.Release();
  ASSERT_TRUE(completions_.WaitForCount(3));
  EXPECT_TRUE(completions_.StatusOf(0).ok());
  scheduler_.reset();
  EXPECT_EQ(completions_.Count(), 3);
}

TEST_F(UnbatchedSchedulerTest, DrainOfAnIdleSchedulerReturnsAtOnce) {
  MakeScheduler(2, 8);
  scheduler_->Drain(absl::InfiniteFuture());
  EXPECT_EQ(completions_.Count(), 0);
}

TEST_F(UnbatchedSchedulerTest,
       ScheduleAfterDrainIsUnavailableAndNeverAnswered) {
  MakeScheduler(1, 8);
  scheduler_->Drain(absl::InfiniteFuture());
  absl::Status refused = scheduler_->Schedule(NewTask(0));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("shutting down"));
  scheduler_.reset();
  EXPECT_EQ(completions_.Count(), 0);
}

TEST_F(UnbatchedSchedulerTest, DestructorAnswersQueuedTasksAndFinishesRunning) {
  MakeScheduler(1, 8);
  Gate& gate = ScheduleHeld(0);
  ASSERT_TRUE(scheduler_->Schedule(NewTask(1)).ok());
  ASSERT_TRUE(scheduler_->Schedule(NewTask(2)).ok());

  std::thread destroyer([&] { scheduler_.reset(); });
  // The queued tasks are answered at once, while task 0 still runs.
  EXPECT_TRUE(completions_.WaitForCount(2));
  EXPECT_EQ(completions_.StatusOf(1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(completions_.StatusOf(2).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(completions_.CallsFor(0), 0);
  gate.Release();
  destroyer.join();
  EXPECT_EQ(completions_.CallsFor(0), 1);
  EXPECT_TRUE(completions_.StatusOf(0).ok());
}

TEST_F(UnbatchedSchedulerTest, TaskIsFreedBeforeDrainReturns) {
  // The task owns what its done callback captured (the request, in the
  // server); it must be gone once Drain reports the scheduler idle.
  MakeScheduler(1, 8);
  auto request = std::make_shared<int>(0);
  std::weak_ptr<int> watch = request;
  std::unique_ptr<InferenceTask> task = NewTask(0);
  task->done = [request = std::move(request)](DoneResult) {};
  ASSERT_TRUE(scheduler_->Schedule(std::move(task)).ok());
  scheduler_->Drain(absl::InfiniteFuture());
  EXPECT_TRUE(watch.expired());
}

TEST_F(UnbatchedSchedulerTest, RunTaskComputesAnAcceptedTaskDirectly) {
  std::unique_ptr<InferenceTask> task = NewTask(0, 4);
  const std::vector<SequenceResult> expected = Direct(*task);
  RunTask(*task, *pool_);
  DoneResult got = completions_.ResultOf(0);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_TRUE(TensorNear((*got)[0].output, expected[0].output, 0));
}

TEST_F(UnbatchedSchedulerTest, RunTaskAnswersCancelledAndExpiredUncomputed) {
  std::unique_ptr<InferenceTask> cancelled = NewTask(0, 2, /*valid=*/false);
  cancelled->is_cancelled = [] { return true; };
  RunTask(*cancelled, *pool_);
  EXPECT_EQ(completions_.StatusOf(0).code(), absl::StatusCode::kCancelled);

  std::unique_ptr<InferenceTask> expired = NewTask(1, 2, /*valid=*/false);
  expired->enqueue_time = absl::Now() - absl::Milliseconds(1500);
  expired->deadline = absl::Now() - absl::Milliseconds(500);
  RunTask(*expired, *pool_);
  EXPECT_EQ(completions_.StatusOf(1).code(),
            absl::StatusCode::kDeadlineExceeded);
  // The time in the queue, in milliseconds.
  EXPECT_THAT(std::string(completions_.StatusOf(1).message()),
              HasSubstr("expired after 15"));
}

}  // namespace
}  // namespace biserve
