#include "core/batching/dynamic_batch_scheduler.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/common/thread_pool.h"
#include "core/eval/evaluator.h"
#include "core/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/notification.h"
#include "tests/support/random_model.h"
#include "tests/support/scheduler_test_util.h"

namespace biserve {
namespace {

using testing::Completions;
using testing::DoneResult;
using ::testing::ElementsAre;
using testing::EvaluateAlone;
using testing::Eventually;
using testing::ExpectSameResults;
using testing::FakeClock;
using testing::Gate;
using ::testing::HasSubstr;
using testing::kBound;
using testing::RandomFeatureModelSpec;
using testing::RandomModelSpec;
using testing::RandomValues;

// One call of run_batch, as the recorder saw it.
struct RecordedBatch {
  const Model* model = nullptr;
  std::vector<int> ids;  // the tasks, in the batch's order
  int sequences = 0;
  int64_t steps = 0;
};

// The run_batch test double: records each batch, holds it at a gate when
// the test asked for one, then answers every task OK with one empty result
// per sequence. Knows tasks by the ids the test gave them (Name).
class BatchRecorder {
 public:
  void Name(const InferenceTask* task, int id) {
    std::lock_guard<std::mutex> lock(mu_);
    names_[task] = id;
  }
  int IdOf(const InferenceTask* task) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = names_.find(task);
    return it == names_.end() ? -1 : it->second;
  }

  // The next batch to enter run_batch waits at `gate` (which must outlive
  // the scheduler) before its tasks are answered.
  void HoldNextBatch(Gate& gate) {
    std::lock_guard<std::mutex> lock(mu_);
    holds_.push_back(&gate);
  }

  // Runs on the batch thread after each batch's tasks are answered.
  // REQUIRES: set before the scheduler is created.
  void SetAfterBatch(std::function<void(const RecordedBatch&)> after) {
    after_ = std::move(after);
  }

  std::function<void(Batch&)> RunBatch() {
    return [this](Batch& batch) {
      RecordedBatch record;
      record.model = batch.front()->servable.model.get();
      for (const auto& task : batch) {
        if (task->servable.model.get() != record.model) mixed_models_ = true;
        record.ids.push_back(IdOf(task.get()));
        record.sequences += static_cast<int>(task->sequences.size());
        record.steps += task->total_steps();
      }
      Gate* gate = nullptr;
      {
        std::lock_guard<std::mutex> lock(mu_);
        batches_.push_back(record);
        if (!holds_.empty()) {
          gate = holds_.front();
          holds_.pop_front();
        }
      }
      if (gate != nullptr) gate->Enter();
      for (auto& task : batch) {
        task->done(std::vector<SequenceResult>(task->sequences.size()));
      }
      if (after_) after_(record);
    };
  }

  std::vector<RecordedBatch> Batches() const {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  std::vector<std::vector<int>> BatchIds() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::vector<int>> ids;
    for (const RecordedBatch& b : batches_) ids.push_back(b.ids);
    return ids;
  }
  // Whether task `id` was ever given to run_batch.
  bool Ran(int id) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const RecordedBatch& b : batches_) {
      if (std::find(b.ids.begin(), b.ids.end(), id) != b.ids.end()) {
        return true;
      }
    }
    return false;
  }
  bool mixed_models() const { return mixed_models_.load(); }

 private:
  mutable std::mutex mu_;
  std::map<const InferenceTask*, int> names_;  // guarded by mu_
  std::deque<Gate*> holds_;                    // guarded by mu_
  std::vector<RecordedBatch> batches_;         // guarded by mu_
  std::atomic<bool> mixed_models_{false};
  std::function<void(const RecordedBatch&)> after_;  // set before use
};

class DynamicBatchSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(5);
    const ModelSpec spec = RandomFeatureModelSpec(rng);
    for (int version : {1, 2}) {
      auto model = Model::Create(spec);
      ASSERT_TRUE(model.ok()) << model.status();
      ServableModel& servable = version == 1 ? v1_ : v2_;
      servable.name = "m";
      servable.version = version;
      servable.model = *model;
      servable.batching.max_batch_size = 4;
      servable.batching.max_batch_steps = 1000;
      servable.batching.max_queue_delay_us = 1000;
      servable.batching.max_queue_size = 64;
    }
  }

  void TearDown() override {
    // A test that failed half-way may leave a gate closed: open it, so that
    // the scheduler's destructor does not wait for the bound.
    for (Gate& gate : gates_) gate.Release();
    scheduler_.reset();
    // Exactly once: every accepted task was answered once, and no refused
    // task ever was, whatever the test did.
    std::lock_guard<std::mutex> lock(submitted_mu_);
    for (int id : accepted_) {
      EXPECT_EQ(completions_.CallsFor(id), 1) << "accepted task " << id;
    }
    for (int id : refused_) {
      EXPECT_EQ(completions_.CallsFor(id), 0) << "refused task " << id;
    }
  }

  // A gate that outlives the scheduler.
  Gate& NewGate() { return gates_.emplace_back(); }

  // `clock`: clock_ unless given (it must outlive the scheduler).
  void MakeScheduler(int num_batch_threads, Clock* clock = nullptr) {
    auto scheduler = DynamicBatchScheduler::Create(
        {.num_batch_threads = num_batch_threads,
         .clock = clock != nullptr ? clock : &clock_,
         .run_batch = recorder_.RunBatch()},
        nullptr);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = *std::move(scheduler);
    live_ = scheduler_.get();
  }

  // Task `id`, for `servable` (default v1_), of `sequences` sequences of
  // `length` steps. The recorder never reads their features.
  std::unique_ptr<InferenceTask> NewTask(
      int id, int sequences = 1, int64_t length = 3,
      const ServableModel* servable = nullptr) {
    auto task = std::make_unique<InferenceTask>();
    task->servable = servable != nullptr ? *servable : v1_;
    for (int s = 0; s < sequences; ++s) {
      task->sequences.push_back(SequenceInput{.length = length});
    }
    task->done = completions_.Callback(id);
    recorder_.Name(task.get(), id);
    return task;
  }

  // Schedules `task`, remembering whether it was accepted.
  absl::Status Submit(std::unique_ptr<InferenceTask> task) {
    const int id = recorder_.IdOf(task.get());
    // Through live_, not scheduler_: a batch hook may submit while the
    // scheduler is being destroyed (scheduler_ is then already null, and
    // the scheduler answers UNAVAILABLE).
    absl::Status status = live_->Schedule(std::move(task));
    std::lock_guard<std::mutex> lock(submitted_mu_);
    (status.ok() ? accepted_ : refused_).push_back(id);
    return status;
  }

  // Schedules task `id` and holds its batch at a new gate, once the batch
  // is running. The scheduler is idle before, so it runs the task at once.
  Gate& SubmitHeld(int id) {
    Gate& gate = NewGate();
    recorder_.HoldNextBatch(gate);
    EXPECT_TRUE(Submit(NewTask(id)).ok());
    EXPECT_TRUE(gate.WaitUntilEntered());
    return gate;
  }

  // Returns once a batch thread has looked at the queues and the clock
  // after every change made before the call, and found nothing to run. Two
  // waits: the first may end a look that read the clock before the call.
  // The clock does not wake a settled thread by itself, so each round
  // wakes it (Advance by nothing) to look again.
  // REQUIRES: every other batch thread is held inside run_batch (or in a
  // `done`), so that only one thread waits on the clock.
  bool Settle() {
    const int64_t start = clock_.waits();
    for (int64_t seen = start; seen <= start + 1; ++seen) {
      clock_.Advance(absl::ZeroDuration());
      if (!clock_.WaitForWaitsAbove(seen, kBound)) return false;
    }
    return true;
  }

  // Declared first so that they outlive the scheduler.
  FakeClock clock_;
  testing::ParkingClock parking_clock_{&clock_};
  std::deque<Gate> gates_;
  Completions completions_;
  BatchRecorder recorder_;
  std::mutex submitted_mu_;
  std::vector<int> accepted_;  // guarded by submitted_mu_
  std::vector<int> refused_;   // guarded by submitted_mu_
  ServableModel v1_;
  ServableModel v2_;  // another version of the same model
  std::unique_ptr<DynamicBatchScheduler> scheduler_;
  // The scheduler, valid until its destructor has returned.
  DynamicBatchScheduler* live_ = nullptr;
};

TEST(DynamicBatchSchedulerCreateTest, RejectsNoBatchThreadsAndNothingToRun) {
  auto no_threads = DynamicBatchScheduler::Create(
      {.num_batch_threads = 0, .run_batch = [](Batch&) {}}, nullptr);
  EXPECT_EQ(no_threads.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_threads.status().message()),
              HasSubstr("at least 1; was 0"));
  auto nothing = DynamicBatchScheduler::Create({}, nullptr);
  EXPECT_EQ(nothing.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DynamicBatchSchedulerTest, IdleSchedulerRunsALoneTaskWithoutWaiting) {
  MakeScheduler(2);
  ASSERT_TRUE(Submit(NewTask(0)).ok());
  // The clock never moves: the delay cannot be what lets it run.
  ASSERT_TRUE(completions_.WaitForCount(1));
  EXPECT_TRUE(completions_.StatusOf(0).ok());
  EXPECT_THAT(recorder_.BatchIds(), ElementsAre(ElementsAre(0)));
  EXPECT_EQ(clock_.Now(), FakeClock::kStart);
}

TEST_F(DynamicBatchSchedulerTest, WhileABatchRunsTasksWaitForTheDelay) {
  MakeScheduler(2);
  Gate& running = SubmitHeld(0);
  ASSERT_TRUE(Submit(NewTask(1)).ok());
  ASSERT_TRUE(Submit(NewTask(2)).ok());
  ASSERT_TRUE(Settle());
  EXPECT_EQ(recorder_.Batches().size(), 1u);

  clock_.Advance(absl::Microseconds(999));
  ASSERT_TRUE(Settle());
  EXPECT_EQ(recorder_.Batches().size(), 1u);
  EXPECT_EQ(completions_.Count(), 0);

  // The oldest has now waited max_queue_delay_us: both go, as one batch,
  // while batch 0 still runs.
  clock_.Advance(absl::Microseconds(1));
  ASSERT_TRUE(completions_.WaitFor({1, 2}));
  EXPECT_THAT(recorder_.BatchIds(),
              ElementsAre(ElementsAre(0), ElementsAre(1, 2)));
  EXPECT_EQ(completions_.CallsFor(0), 0);
  running.Release();
  ASSERT_TRUE(completions_.WaitFor({0}));
}

TEST_F(DynamicBatchSchedulerTest, WhileABatchRunsAFullBatchGoesAtOnce) {
  MakeScheduler(2);
  Gate& running = SubmitHeld(0);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(Submit(NewTask(id)).ok());
  ASSERT_TRUE(Settle());
  EXPECT_EQ(recorder_.Batches().size(), 1u);

  // The fourth sequence fills max_batch_size = 4: no clock advance needed.
  ASSERT_TRUE(Submit(NewTask(4)).ok());
  ASSERT_TRUE(completions_.WaitFor({1, 2, 3, 4}));
  EXPECT_THAT(recorder_.BatchIds(),
              ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3, 4)));

  // A fifth waits again...
  ASSERT_TRUE(Submit(NewTask(5)).ok());
  ASSERT_TRUE(Settle());
  EXPECT_EQ(completions_.CallsFor(5), 0);
  // ...until no batch runs.
  running.Release();
  ASSERT_TRUE(completions_.WaitFor({0, 5}));
  EXPECT_EQ(recorder_.Batches().size(), 3u);
  EXPECT_EQ(clock_.Now(), FakeClock::kStart);
}

TEST_F(DynamicBatchSchedulerTest, BatchesStopAtMaxBatchSize) {
  MakeScheduler(1);
  Gate& running = SubmitHeld(0);
  for (int id = 1; id <= 9; ++id) ASSERT_TRUE(Submit(NewTask(id)).ok());
  running.Release();
  ASSERT_TRUE(completions_.WaitForCount(10));
  EXPECT_THAT(recorder_.BatchIds(),
              ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3, 4),
                          ElementsAre(5, 6, 7, 8), ElementsAre(9)));
}

TEST_F(DynamicBatchSchedulerTest, BatchesCountEverySequenceOfATask) {
  MakeScheduler(1);
  Gate& running = SubmitHeld(0);
  // 2 + 2 sequences fill a batch of 4; 3 does not join 2.
  ASSERT_TRUE(Submit(NewTask(1, /*sequences=*/2)).ok());
  ASSERT_TRUE(Submit(NewTask(2, /*sequences=*/2)).ok());
  ASSERT_TRUE(Submit(NewTask(3, /*sequences=*/3)).ok());
  running.Release();
  ASSERT_TRUE(completions_.WaitForCount(4));
  EXPECT_THAT(recorder_.BatchIds(),
              ElementsAre(ElementsAre(0), ElementsAre(1, 2), ElementsAre(3)));
  for (const RecordedBatch& batch : recorder_.Batches()) {
    EXPECT_LE(batch.sequences, 4);
  }
}

TEST_F(DynamicBatchSchedulerTest,
       BatchesStopAtMaxBatchStepsAndBigTasksRunAlone) {
  v1_.batching.max_batch_size = 64;
  v1_.batching.max_batch_steps = 10;
  MakeScheduler(1);
  Gate& running = SubmitHeld(0);
  // 4 + 4 steps fit 10; a third would make 12. Task 3, 25 steps, is over
  // the cap alone.
  ASSERT_TRUE(Submit(NewTask(1, 1, 4)).ok());
  ASSERT_TRUE(Submit(NewTask(2, 1, 4)).ok());
  ASSERT_TRUE(Submit(NewTask(3, 1, 25)).ok());
  ASSERT_TRUE(Submit(NewTask(4, 1, 4)).ok());
  ASSERT_TRUE(Submit(NewTask(5, 1, 4)).ok());
  running.Release();
  ASSERT_TRUE(completions_.WaitForCount(6));
  const std::vector<RecordedBatch> batches = recorder_.Batches();
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_THAT(batches[1].ids, ElementsAre(1, 2));
  EXPECT_THAT(batches[2].ids, ElementsAre(3));
  EXPECT_EQ(batches[2].steps, 25);
  EXPECT_THAT(batches[3].ids, ElementsAre(4, 5));
  for (size_t b = 0; b < batches.size(); ++b) {
    if (batches[b].ids.size() > 1) {
      EXPECT_LE(batches[b].steps, 10) << b;
    }
  }
}

TEST_F(DynamicBatchSchedulerTest, TasksOfTwoModelVersionsNeverShareABatch) {
  MakeScheduler(1);
  Gate& running = SubmitHeld(0);
  for (int id = 1; id <= 8; ++id) {
    clock_.Advance(absl::Microseconds(1));  // v1's oldest goes first
    ASSERT_TRUE(Submit(NewTask(id, 1, 3, id % 2 ? &v1_ : &v2_)).ok());
  }
  running.Release();
  ASSERT_TRUE(completions_.WaitForCount(9));
  EXPECT_FALSE(recorder_.mixed_models());
  const std::vector<RecordedBatch> batches = recorder_.Batches();
  // Each version's four tasks make one full batch.
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_THAT(batches[1].ids, ElementsAre(1, 3, 5, 7));
  EXPECT_EQ(batches[1].model, v1_.model.get());
  EXPECT_THAT(batches[2].ids, ElementsAre(2, 4, 6, 8));
  EXPECT_EQ(batches[2].model, v2_.model.get());
}

TEST_F(DynamicBatchSchedulerTest, HotModelCannotStarveAQuietOne) {
  // One batch thread; batches of 2; a delay that never runs out, so only
  // the order between ready queues can let the quiet model in.
  v1_.batching.max_batch_size = 2;
  v1_.batching.max_queue_delay_us = absl::ToInt64Microseconds(absl::Hours(1));
  v2_.batching = v1_.batching;
  static constexpr int kQuiet = 1000;
  // Shared with the hook, which the scheduler's destructor may still run
  // (for hot tasks left queued) after this body has returned.
  struct HotState {
    std::atomic<int> next_hot{1};
    std::atomic<bool> quiet_ran{false};
  };
  auto state = std::make_shared<HotState>();
  std::atomic<int>& next_hot = state->next_hot;
  // After each hot batch, as many new hot tasks as it held join the queue,
  // so the hot queue always holds three full batches.
  recorder_.SetAfterBatch([this, state](const RecordedBatch& batch) {
    if (std::find(batch.ids.begin(), batch.ids.end(), kQuiet) !=
        batch.ids.end()) {
      state->quiet_ran = true;
    }
    // The cap ends the test should the quiet task starve.
    if (state->quiet_ran || batch.model != v1_.model.get() ||
        state->next_hot > 200) {
      return;
    }
    for (size_t i = 0; i < batch.ids.size(); ++i) {
      clock_.Advance(absl::Microseconds(1));
      EXPECT_TRUE(Submit(NewTask(state->next_hot++)).ok());
    }
  });
  MakeScheduler(1);
  Gate& running = SubmitHeld(0);
  for (int i = 0; i < 6; ++i) {
    clock_.Advance(absl::Microseconds(1));
    ASSERT_TRUE(Submit(NewTask(next_hot++)).ok());
  }
  clock_.Advance(absl::Microseconds(1));
  ASSERT_TRUE(Submit(NewTask(kQuiet, 1, 3, &v2_)).ok());
  running.Release();

  ASSERT_TRUE(completions_.WaitFor({kQuiet}));
  // The hooks of the batches before the quiet one, on the one batch thread,
  // have scheduled every hot task there will be (ids 0 to next_hot - 1).
  ASSERT_TRUE(completions_.WaitForCount(next_hot.load() + 1));
  const std::vector<RecordedBatch> batches = recorder_.Batches();
  size_t quiet_batch = batches.size();
  for (size_t b = 0; b < batches.size(); ++b) {
    if (batches[b].ids == std::vector<int>{kQuiet}) quiet_batch = b;
  }
  // Batch 0, then the three hot batches queued before it; then its turn,
  // although the hot queue was full (ready) all along.
  EXPECT_EQ(quiet_batch, 4u);
  EXPECT_FALSE(recorder_.mixed_models());
}

TEST_F(DynamicBatchSchedulerTest, FullQueueIsUnavailableNamingTheModel) {
  v1_.batching.max_queue_size = 2;
  MakeScheduler(1);
  Gate& running = SubmitHeld(0);  // no longer queued
  ASSERT_TRUE(Submit(NewTask(1)).ok());
  ASSERT_TRUE(Submit(NewTask(2)).ok());
  absl::Status refused = Submit(NewTask(3));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("queue of model 'm' version 1 is full (2 requests"));
  EXPECT_EQ(scheduler_->QueueDepth(), 2);
  // Another version has a queue of its own.
  ASSERT_TRUE(Submit(NewTask(4, 1, 3, &v2_)).ok());
  EXPECT_EQ(scheduler_->QueueDepth(), 3);

  running.Release();
  ASSERT_TRUE(completions_.WaitFor({0, 1, 2, 4}));
  scheduler_.reset();  // joins: every answer that will ever come has come
  EXPECT_EQ(completions_.CallsFor(3), 0);
  EXPECT_FALSE(recorder_.Ran(3));
}

TEST_F(DynamicBatchSchedulerTest, QueueDepthCountsTasksNotYetInABatch) {
  MakeScheduler(1);
  EXPECT_EQ(scheduler_->QueueDepth(), 0);
  Gate& running = SubmitHeld(0);
  EXPECT_EQ(scheduler_->QueueDepth(), 0);  // running, not queued
  ASSERT_TRUE(Submit(NewTask(1)).ok());
  ASSERT_TRUE(Submit(NewTask(2, 1, 3, &v2_)).ok());
  EXPECT_EQ(scheduler_->QueueDepth(), 2);
  running.Release();
  ASSERT_TRUE(completions_.WaitForCount(3));
  EXPECT_EQ(scheduler_->QueueDepth(), 0);
}

TEST_F(DynamicBatchSchedulerTest, DeadlinePassingInTheQueueIsDeadlineExceeded) {
  v1_.batching.max_queue_delay_us = absl::ToInt64Microseconds(absl::Hours(1));
  MakeScheduler(2);
  Gate& running = SubmitHeld(0);
  std::unique_ptr<InferenceTask> task = NewTask(1);
  task->deadline = clock_.Now() + absl::Milliseconds(5);
  ASSERT_TRUE(Submit(std::move(task)).ok());
  ASSERT_TRUE(Submit(NewTask(2)).ok());  // no deadline
  ASSERT_TRUE(Settle());
  EXPECT_EQ(completions_.Count(), 0);

  clock_.Advance(absl::Milliseconds(5));
  ASSERT_TRUE(completions_.WaitFor({1}));
  EXPECT_EQ(completions_.StatusOf(1).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(completions_.StatusOf(1).message()),
              HasSubstr("expired after 5 ms in the queue"));
  running.Release();
  ASSERT_TRUE(completions_.WaitFor({0, 2}));
  EXPECT_TRUE(completions_.StatusOf(2).ok());
  EXPECT_FALSE(recorder_.Ran(1));
}

TEST_F(DynamicBatchSchedulerTest, ExpiredTaskOnAnIdleSchedulerIsNeverRun) {
  MakeScheduler(1);
  std::unique_ptr<InferenceTask> task = NewTask(0);
  task->deadline = clock_.Now() - absl::Milliseconds(1);
  ASSERT_TRUE(Submit(std::move(task)).ok());
  ASSERT_TRUE(completions_.WaitFor({0}));
  EXPECT_EQ(completions_.StatusOf(0).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(recorder_.Batches().empty());
}

TEST_F(DynamicBatchSchedulerTest, TaskCancelledInTheQueueIsCancelledUnrun) {
  v1_.batching.max_queue_delay_us = absl::ToInt64Microseconds(absl::Hours(1));
  MakeScheduler(2);
  Gate& running = SubmitHeld(0);
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<InferenceTask> task = NewTask(1);
  task->is_cancelled = [cancelled] { return cancelled->load(); };
  ASSERT_TRUE(Submit(std::move(task)).ok());
  ASSERT_TRUE(Submit(NewTask(2)).ok());
  ASSERT_TRUE(Settle());
  EXPECT_EQ(completions_.Count(), 0);

  cancelled->store(true);  // the client goes away while the task waits
  // The scheduler does not poll: it sees the cancellation the next time it
  // looks at its queues (any wake-up; here one with no time passing).
  clock_.Advance(absl::ZeroDuration());
  ASSERT_TRUE(completions_.WaitFor({1}));
  EXPECT_EQ(completions_.StatusOf(1).code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(completions_.StatusOf(1).message()),
              HasSubstr("cancelled before it was computed"));
  running.Release();
  ASSERT_TRUE(completions_.WaitFor({0, 2}));
  EXPECT_FALSE(recorder_.Ran(1));
  EXPECT_TRUE(recorder_.Ran(2));
}

TEST_F(DynamicBatchSchedulerTest, CancelledTaskOnAnIdleSchedulerIsNeverRun) {
  MakeScheduler(1);
  std::unique_ptr<InferenceTask> task = NewTask(0);
  task->is_cancelled = [] { return true; };
  ASSERT_TRUE(Submit(std::move(task)).ok());
  ASSERT_TRUE(completions_.WaitFor({0}));
  EXPECT_EQ(completions_.StatusOf(0).code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(recorder_.Batches().empty());
}

TEST_F(DynamicBatchSchedulerTest, DrainRunsQueuedTasksAtOnceThenRefuses) {
  v1_.batching.max_queue_delay_us = absl::ToInt64Microseconds(absl::Hours(1));
  MakeScheduler(2);
  Gate& running = SubmitHeld(0);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(Submit(NewTask(id)).ok());
  ASSERT_TRUE(Settle());
  EXPECT_EQ(completions_.Count(), 0);

  testing::Notification drained;
  std::thread drainer([&] {
    scheduler_->Drain(absl::InfiniteFuture());
    drained.Notify();
  });
  // Not full, the delay far off, a batch running: only the drain runs
  // them, and without the clock moving.
  ASSERT_TRUE(completions_.WaitFor({1, 2, 3}));
  EXPECT_THAT(recorder_.BatchIds(),
              ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3)));
  EXPECT_FALSE(drained.HasBeenNotified());  // batch 0 still runs
  running.Release();
  EXPECT_TRUE(drained.WaitForNotificationWithTimeout(kBound));
  drainer.join();
  for (int id = 0; id <= 3; ++id) EXPECT_TRUE(completions_.StatusOf(id).ok());
  EXPECT_EQ(clock_.Now(), FakeClock::kStart);

  absl::Status refused = Submit(NewTask(4));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("shutting down"));
}

TEST_F(DynamicBatchSchedulerTest,
       DrainComputesEveryQueuedTaskBeforeReturningNotOnlyRunningOnes) {
  // Requests queued that no batch thread has taken yet (it has not woken
  // since they came), none running: Drain must still have every one
  // computed and answered before it returns. A Drain that waited only for
  // running batches returned at once here and answered them UNAVAILABLE
  // (behind a running batch that cannot show: the thread ending a batch
  // takes the next under the same lock, so running never drops to 0 with
  // tasks queued).
  Gate& parked = NewGate();
  parking_clock_.ParkNextWait(&parked);
  MakeScheduler(1, &parking_clock_);
  // The only batch thread, idle, waits on the clock: held there.
  ASSERT_TRUE(parked.WaitUntilEntered());
  for (int id = 1; id <= 6; ++id) ASSERT_TRUE(Submit(NewTask(id)).ok());
  EXPECT_EQ(scheduler_->QueueDepth(), 6);

  testing::Notification drained;
  int answered_when_drained = -1;
  const int64_t waits = clock_.waits();
  std::thread drainer([&] {
    scheduler_->Drain(absl::InfiniteFuture());
    answered_when_drained = completions_.Count();
    drained.Notify();
  });
  // Either Drain returns, or it waits on the clock (the only other
  // waiter is parked, not counted).
  ASSERT_TRUE(Eventually(
      [&] { return drained.HasBeenNotified() || clock_.waits() > waits; }));
  EXPECT_FALSE(drained.HasBeenNotified())
      << "Drain returned with 6 tasks queued and none computed";
  parked.Release();  // the batch thread wakes: draining, it runs them all
  ASSERT_TRUE(drained.WaitForNotificationWithTimeout(kBound));
  drainer.join();
  EXPECT_EQ(answered_when_drained, 6);
  for (int id = 1; id <= 6; ++id) {
    EXPECT_TRUE(completions_.StatusOf(id).ok())
        << id << ": " << completions_.StatusOf(id);
    EXPECT_TRUE(recorder_.Ran(id)) << id;
  }
  // In full batches (max_batch_size 4), without waiting for any delay.
  EXPECT_THAT(recorder_.BatchIds(),
              ElementsAre(ElementsAre(1, 2, 3, 4), ElementsAre(5, 6)));
  EXPECT_EQ(clock_.Now(), FakeClock::kStart);
}

TEST_F(DynamicBatchSchedulerTest,
       DrainWithAPastDeadlineAnswersQueuedUnavailable) {
  MakeScheduler(1);
  Gate& running = SubmitHeld(0);
  ASSERT_TRUE(Submit(NewTask(1)).ok());
  ASSERT_TRUE(Submit(NewTask(2, 1, 3, &v2_)).ok());

  scheduler_->Drain(clock_.Now());
  EXPECT_EQ(completions_.Count(), 2);
  for (int id : {1, 2}) {
    EXPECT_EQ(completions_.StatusOf(id).code(), absl::StatusCode::kUnavailable)
        << id;
    EXPECT_THAT(std::string(completions_.StatusOf(id).message()),
                HasSubstr("shut down before this request was computed"));
  }
  EXPECT_EQ(scheduler_->QueueDepth(), 0);
  EXPECT_EQ(completions_.CallsFor(0), 0);  // still running

  // The running batch finishes afterwards, answered once.
  running.Release();
  ASSERT_TRUE(completions_.WaitFor({0}));
  EXPECT_TRUE(completions_.StatusOf(0).ok());
  EXPECT_FALSE(recorder_.Ran(1));
  EXPECT_FALSE(recorder_.Ran(2));
}

TEST_F(DynamicBatchSchedulerTest, DrainGivesUpWhenTheClockReachesItsDeadline) {
  MakeScheduler(1);
  Gate& running = SubmitHeld(0);
  ASSERT_TRUE(Submit(NewTask(1)).ok());
  testing::Notification drained;
  const int64_t waits = clock_.waits();
  std::thread drainer([&] {
    scheduler_->Drain(clock_.Now() + absl::Seconds(1));
    drained.Notify();
  });
  // The drain waits on the clock (the batch thread is held)...
  ASSERT_TRUE(clock_.WaitForWaitsAbove(waits, kBound));
  EXPECT_FALSE(drained.HasBeenNotified());
  EXPECT_EQ(completions_.Count(), 0);
  // ...until its deadline comes.
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(drained.WaitForNotificationWithTimeout(kBound));
  drainer.join();
  EXPECT_EQ(completions_.StatusOf(1).code(), absl::StatusCode::kUnavailable);
  running.Release();
  ASSERT_TRUE(completions_.WaitFor({0}));
}

TEST_F(DynamicBatchSchedulerTest, DrainWaitsUntilDroppedTasksAreAnswered) {
  // A cancelled task is answered outside the lock, by a batch thread that
  // runs no batch: Drain must count it as not yet done.
  MakeScheduler(1);
  Gate& answering = NewGate();
  std::unique_ptr<InferenceTask> task = NewTask(0);
  task->is_cancelled = [] { return true; };
  task->done = [&answering,
                record = std::move(task->done)](DoneResult result) mutable {
    answering.Enter();
    record(std::move(result));
  };
  ASSERT_TRUE(Submit(std::move(task)).ok());
  ASSERT_TRUE(answering.WaitUntilEntered());

  testing::Notification drained;
  const int64_t waits = clock_.waits();
  std::thread drainer([&] {
    scheduler_->Drain(absl::InfiniteFuture());
    drained.Notify();
  });
  // Either Drain returns, or it waits on the clock (the only waiter: the
  // batch thread is inside `done`).
  ASSERT_TRUE(Eventually(
      [&] { return drained.HasBeenNotified() || clock_.waits() > waits; }));
  EXPECT_FALSE(drained.HasBeenNotified())
      << "Drain returned while a task's done was still running";
  answering.Release();
  EXPECT_TRUE(drained.WaitForNotificationWithTimeout(kBound));
  drainer.join();
  EXPECT_EQ(completions_.StatusOf(0).code(), absl::StatusCode::kCancelled);
}

TEST_F(DynamicBatchSchedulerTest, DrainOfAnIdleSchedulerReturnsAtOnce) {
  MakeScheduler(2);
  scheduler_->Drain(absl::InfiniteFuture());
  EXPECT_EQ(completions_.Count(), 0);
  EXPECT_EQ(Submit(NewTask(0)).code(), absl::StatusCode::kUnavailable);
}

TEST_F(DynamicBatchSchedulerTest, DestructorAnswersQueuedAndJoinsRunning) {
  MakeScheduler(2);
  Gate& running = SubmitHeld(0);
  ASSERT_TRUE(Submit(NewTask(1)).ok());
  ASSERT_TRUE(Submit(NewTask(2, 1, 3, &v2_)).ok());

  std::thread destroyer([&] { scheduler_.reset(); });
  // The queued tasks are answered at once, while batch 0 still runs.
  ASSERT_TRUE(completions_.WaitFor({1, 2}));
  EXPECT_EQ(completions_.StatusOf(1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(completions_.StatusOf(2).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(completions_.CallsFor(0), 0);
  running.Release();
  destroyer.join();
  EXPECT_EQ(completions_.CallsFor(0), 1);
  EXPECT_TRUE(completions_.StatusOf(0).ok());
}

TEST_F(DynamicBatchSchedulerTest, DoneRunsExactlyOncePerAcceptedTask) {
  // A mix of tasks answered by a batch, by cancellation, by deadline, and
  // refused when the queue is full; TearDown checks that each accepted
  // task was answered once and each refused one never.
  v1_.batching.max_queue_size = 40;
  v2_.batching.max_queue_size = 40;
  MakeScheduler(1);
  Gate& running = SubmitHeld(0);  // nothing leaves the queues meanwhile
  int refused = 0;
  for (int id = 1; id <= 100; ++id) {
    std::unique_ptr<InferenceTask> task =
        NewTask(id, 1 + id % 3, 1 + id % 7, id % 2 ? &v1_ : &v2_);
    if (id % 5 == 1) task->is_cancelled = [] { return true; };
    // Each expires before the loop ends.
    if (id % 5 == 2) task->deadline = clock_.Now() + absl::Microseconds(id);
    const bool accepted = Submit(std::move(task)).ok();
    // Each version's tasks 41 to 50 find its queue full.
    EXPECT_EQ(accepted, id <= 80) << id;
    if (!accepted) ++refused;
    clock_.Advance(absl::Microseconds(50));
  }
  EXPECT_EQ(refused, 20);
  running.Release();
  scheduler_->Drain(absl::InfiniteFuture());
  EXPECT_EQ(completions_.Count(), 81);
  for (int id = 0; id <= 80; ++id) {
    const absl::StatusCode expected = id % 5 == 1 ? absl::StatusCode::kCancelled
                                      : id % 5 == 2
                                          ? absl::StatusCode::kDeadlineExceeded
                                          : absl::StatusCode::kOk;
    EXPECT_EQ(completions_.StatusOf(id).code(), expected) << id;
    EXPECT_EQ(recorder_.Ran(id), expected == absl::StatusCode::kOk) << id;
  }
}

// --- EvaluateBatch, alone and under the scheduler ---

// Random inputs for `model`: features or token ids, some steps masked,
// initial states on some sequences. Owns the values its inputs borrow.
// Move-only: a move keeps the values where the inputs point (a copy would
// not).
struct RandomSequences {
  RandomSequences() = default;
  RandomSequences(RandomSequences&&) = default;
  RandomSequences& operator=(RandomSequences&&) = default;

  std::deque<std::vector<float>> floats;
  std::deque<std::vector<int32_t>> ids;
  std::vector<SequenceInput> inputs;
};

RandomSequences MakeSequences(std::mt19937& rng, const Model& model, int count,
                              int max_length) {
  RandomSequences r;
  const BidirectionalLayer& first =
      model.bidirectional(model.first_bidirectional());
  for (int i = 0; i < count; ++i) {
    SequenceInput in;
    in.length = std::uniform_int_distribution<int64_t>(1, max_length)(rng);
    if (model.takes_token_ids()) {
      std::uniform_int_distribution<int32_t> id(
          0, static_cast<int32_t>(model.embedding()->embeddings.rows()) - 1);
      std::vector<int32_t>& ids = r.ids.emplace_back();
      for (int64_t t = 0; t < in.length; ++t) ids.push_back(id(rng));
      in.token_ids = ids;
    } else {
      std::vector<float>& values = r.floats.emplace_back(
          RandomValues(rng, in.length * model.input_dim()));
      if (model.mask_value().has_value()) {
        for (int64_t t = 0; t < in.length; ++t) {
          if (std::bernoulli_distribution(0.25)(rng)) {
            std::fill_n(values.begin() + t * model.input_dim(),
                        model.input_dim(), *model.mask_value());
          }
        }
      }
      in.features = values;
    }
    if (std::bernoulli_distribution(0.3)(rng)) {
      for (const RnnDirection* d : {&first.forward, &first.backward}) {
        for (int s = 0; s < d->state_count(); ++s) {
          in.initial_state.push_back(
              r.floats.emplace_back(RandomValues(rng, d->units, 0.5f)));
        }
      }
    }
    r.inputs.push_back(std::move(in));
  }
  return r;
}

EvalOptions RandomOptions(std::mt19937& rng) {
  std::bernoulli_distribution coin(0.5);
  EvalOptions options;
  options.output = coin(rng);
  options.directions = coin(rng);
  options.states = coin(rng);
  return options;
}

// A task's results equal Evaluate's for it alone, to float rounding.
constexpr float kTolerance = 1e-6f;

TEST(DynamicBatchEvaluateBatchTest, EachTaskGetsExactlyWhatItAskedFor) {
  // Every combination of output, directions and states in one batch, over
  // models with every merge mode: a task's answer equals its own Evaluate,
  // holding nothing it did not ask for.
  auto pool = ThreadPool::Create({.num_threads = 2, .min_parallel_flops = 0});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(77);
  for (int trial = 0; trial < 30; ++trial) {
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    auto model = Model::Create(RandomModelSpec(rng));
    ASSERT_TRUE(model.ok()) << model.status();
    ServableModel servable{.name = "m", .version = 1, .model = *model};
    Completions completions;
    std::deque<RandomSequences> inputs;
    std::vector<EvalOptions> options;
    Batch batch;
    for (int id = 0; id < 8; ++id) {
      inputs.push_back(MakeSequences(rng, **model, 1 + id % 3, 12));
      options.push_back(EvalOptions{.output = (id & 1) != 0,
                                    .directions = (id & 2) != 0,
                                    .states = (id & 4) != 0});
      auto task = std::make_unique<InferenceTask>();
      task->servable = servable;
      task->sequences = inputs.back().inputs;
      task->options = options.back();
      task->done = completions.Callback(id);
      batch.push_back(std::move(task));
    }
    EvaluateBatch(batch, **pool);
    ASSERT_EQ(completions.Count(), 8);
    for (int id = 0; id < 8; ++id) {
      SCOPED_TRACE(::testing::Message() << "task " << id);
      ExpectSameResults(
          completions.ResultOf(id),
          EvaluateAlone(**model, inputs[id].inputs, options[id], **pool),
          kTolerance, /*relative=*/true);
    }
  }
}

TEST(DynamicBatchEvaluateBatchTest, AFailureAnswersEveryTaskWithIt) {
  auto pool = ThreadPool::Create({});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(8);
  auto model = Model::Create(RandomFeatureModelSpec(rng));
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<float> good = RandomValues(rng, 2 * (*model)->input_dim());
  const std::vector<float> bad(1);
  Completions completions;
  Batch batch;
  for (int id = 0; id < 3; ++id) {
    auto task = std::make_unique<InferenceTask>();
    task->servable = ServableModel{.name = "m", .version = 1, .model = *model};
    task->sequences.push_back(
        SequenceInput{.length = 2, .features = id == 1 ? bad : good});
    task->done = completions.Callback(id);
    batch.push_back(std::move(task));
  }
  EvaluateBatch(batch, **pool);
  for (int id = 0; id < 3; ++id) {
    EXPECT_EQ(completions.CallsFor(id), 1);
    EXPECT_EQ(completions.StatusOf(id).code(),
              absl::StatusCode::kInvalidArgument);
  }
}

class DynamicBatchSchedulerEvaluateTest : public ::testing::TestWithParam<int> {
};

// The property batching rests on, under load: tasks scheduled from several
// threads at once, batched with each other, each get what Evaluate gives
// them alone.
TEST_P(DynamicBatchSchedulerEvaluateTest,
       ConcurrentTasksGetWhatEvaluatingEachAloneGives) {
  auto pool =
      ThreadPool::Create({.num_threads = GetParam(), .min_parallel_flops = 0});
  ASSERT_TRUE(pool.ok());
  std::mt19937 rng(2024 + GetParam());
  std::vector<ServableModel> servables;
  for (int version = 1; version <= 2; ++version) {
    auto model = Model::Create(RandomModelSpec(rng));
    ASSERT_TRUE(model.ok()) << model.status();
    ServableModel& servable = servables.emplace_back();
    servable.name = "m";
    servable.version = version;
    servable.model = *model;
    servable.batching.max_batch_size = 8;
    servable.batching.max_batch_steps = 120;
    servable.batching.max_queue_delay_us =
        absl::ToInt64Microseconds(absl::Hours(1));
    servable.batching.max_queue_size = 1000;
  }

  // Every task's inputs and options, drawn up front from the seed.
  constexpr int kSubmitters = 4;
  constexpr int kPerSubmitter = 30;
  constexpr int kTasks = 1 + kSubmitters * kPerSubmitter;
  struct Planned {
    int servable = 0;
    RandomSequences sequences;
    EvalOptions options;
  };
  std::vector<Planned> plan(kTasks);
  for (Planned& p : plan) {
    p.servable = std::uniform_int_distribution<int>(0, 1)(rng);
    const int count = std::uniform_int_distribution<int>(1, 3)(rng);
    p.sequences = MakeSequences(rng, *servables[p.servable].model, count, 20);
    p.options = RandomOptions(rng);
  }

  Completions completions;
  Gate first_batch;
  std::mutex sizes_mu;
  std::vector<size_t> batch_sizes;  // guarded by sizes_mu
  std::atomic<bool> mixed_models{false};
  FakeClock clock;
  auto scheduler = DynamicBatchScheduler::Create(
      {.num_batch_threads = 2,
       .clock = &clock,
       .run_batch =
           [&](Batch& batch) {
             bool hold;
             {
               std::lock_guard<std::mutex> lock(sizes_mu);
               batch_sizes.push_back(batch.size());
               hold = batch_sizes.size() == 1;
             }
             for (const auto& task : batch) {
               if (task->servable.model != batch[0]->servable.model) {
                 mixed_models = true;
               }
             }
             if (hold) first_batch.Enter();
             EvaluateBatch(batch, **pool);
           }},
      pool->get());
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();

  auto make_task = [&](int id) {
    const Planned& p = plan[id];
    auto task = std::make_unique<InferenceTask>();
    task->servable = servables[p.servable];
    task->sequences = p.sequences.inputs;
    task->options = p.options;
    task->done = completions.Callback(id);
    return task;
  };
  // Task 0 runs at once and holds its batch thread, so that the others
  // queue up and batch together.
  ASSERT_TRUE((*scheduler)->Schedule(make_task(0)).ok());
  ASSERT_TRUE(first_batch.WaitUntilEntered());
  std::atomic<int> refused{0};
  std::vector<std::thread> submitters;
  for (int s = 0; s < kSubmitters; ++s) {
    submitters.emplace_back([&, s] {
      for (int i = 0; i < kPerSubmitter; ++i) {
        if (!(*scheduler)
                 ->Schedule(make_task(1 + s * kPerSubmitter + i))
                 .ok()) {
          ++refused;
        }
      }
    });
  }
  for (std::thread& t : submitters) t.join();
  first_batch.Release();
  ASSERT_EQ(refused.load(), 0);
  ASSERT_TRUE(completions.WaitForCount(kTasks));
  scheduler->reset();

  EXPECT_FALSE(mixed_models.load());
  {
    std::lock_guard<std::mutex> lock(sizes_mu);
    EXPECT_GT(*std::max_element(batch_sizes.begin(), batch_sizes.end()), 1u);
    EXPECT_LT(batch_sizes.size(), static_cast<size_t>(kTasks));
  }
  for (int id = 0; id < kTasks; ++id) {
    SCOPED_TRACE(::testing::Message() << "task " << id);
    EXPECT_EQ(completions.CallsFor(id), 1);
    const Planned& p = plan[id];
    ExpectSameResults(completions.ResultOf(id),
                      EvaluateAlone(*servables[p.servable].model,
                                    p.sequences.inputs, p.options, **pool),
                      kTolerance, /*relative=*/true);
  }
}

INSTANTIATE_TEST_SUITE_P(PoolThreads, DynamicBatchSchedulerEvaluateTest,
                         ::testing::Values(1, 2));

}  // namespace
}  // namespace biserve
