// The test fake of tests/support/: it must keep BatchScheduler's contract
// (each accepted task answered exactly once, refused ones never).
#include "tests/support/puppet_scheduler.h"

#include <map>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace biserve {
namespace {

class PuppetSchedulerTest : public ::testing::Test {
 protected:
  std::unique_ptr<InferenceTask> NewTask(int id) {
    auto task = std::make_unique<InferenceTask>();
    task->done = [this, id](absl::StatusOr<std::vector<SequenceResult>> r) {
      answers_[id].push_back(r.status().code());
    };
    return task;
  }

  std::vector<int> ran_;
  std::map<int, std::vector<absl::StatusCode>> answers_;
  testing::PuppetScheduler scheduler_{[this](InferenceTask& task) {
    ran_.push_back(static_cast<int>(ran_.size()));
    task.done(std::vector<SequenceResult>());
  }};
};

TEST_F(PuppetSchedulerTest, RunsNothingUntilTold) {
  ASSERT_TRUE(scheduler_.Schedule(NewTask(0)).ok());
  ASSERT_TRUE(scheduler_.Schedule(NewTask(1)).ok());
  EXPECT_EQ(scheduler_.QueueDepth(), 2);
  EXPECT_TRUE(answers_.empty());
  EXPECT_EQ(scheduler_.RunNext(1), 1);
  EXPECT_EQ(answers_[0], std::vector{absl::StatusCode::kOk});
  EXPECT_EQ(answers_.count(1), 0u);
  EXPECT_EQ(scheduler_.RunAll(), 1);
  EXPECT_EQ(answers_[1], std::vector{absl::StatusCode::kOk});
  EXPECT_EQ(scheduler_.QueueDepth(), 0);
}

TEST_F(PuppetSchedulerTest, RefusesWhenToldAndNeverAnswersTheRefused) {
  scheduler_.RefuseWith(absl::UnavailableError("full"));
  EXPECT_EQ(scheduler_.Schedule(NewTask(0)).code(),
            absl::StatusCode::kUnavailable);
  scheduler_.RefuseWith(absl::OkStatus());
  EXPECT_TRUE(scheduler_.Schedule(NewTask(1)).ok());
  scheduler_.RunAll();
  EXPECT_EQ(answers_.count(0), 0u);
  EXPECT_EQ(answers_[1].size(), 1u);
}

TEST_F(PuppetSchedulerTest, DrainAnswersQueuedTasksUnavailableThenRefuses) {
  ASSERT_TRUE(scheduler_.Schedule(NewTask(0)).ok());
  scheduler_.Drain(absl::InfiniteFuture());
  EXPECT_EQ(answers_[0], std::vector{absl::StatusCode::kUnavailable});
  EXPECT_EQ(scheduler_.Schedule(NewTask(1)).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(scheduler_.RunAll(), 0);
}

}  // namespace
}  // namespace biserve
