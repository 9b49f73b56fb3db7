#include "core/batching/unrun_task.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace biserve {
namespace {

using ::testing::HasSubstr;

constexpr absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

TEST(UnrunStatusTest, ATaskInTimeAndNotCancelledMayRun) {
  InferenceTask task;
  task.is_cancelled = [] { return false; };
  EXPECT_TRUE(UnrunStatus(task, kNow).ok());
  task.is_cancelled = nullptr;  // optional
  EXPECT_TRUE(UnrunStatus(task, kNow).ok());
}

TEST(UnrunStatusTest, AnExpiredTaskSaysHowLongItWaited) {
  InferenceTask task;
  task.enqueue_time = kNow - absl::Microseconds(1500);
  task.deadline = kNow;
  absl::Status status = UnrunStatus(task, kNow);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("expired after 1.5 ms in the queue"));
}

TEST(UnrunStatusTest, ACancelledTaskIsCancelled) {
  InferenceTask task;
  task.is_cancelled = [] { return true; };
  EXPECT_EQ(UnrunStatus(task, kNow).code(), absl::StatusCode::kCancelled);
}

TEST(UnrunStatusTest, TheDeadlineComesBeforeCancellation) {
  // As the server counts a computed request whose deadline passed.
  InferenceTask task;
  task.deadline = kNow;
  bool asked = false;
  task.is_cancelled = [&asked] {
    asked = true;
    return true;
  };
  EXPECT_EQ(UnrunStatus(task, kNow).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(asked);
}

class CountingObserver : public ServingObserver {
 public:
  void QueueDepthChanged(const ServableModel&, int delta) override {
    depth += delta;
  }
  int depth = 0;
};

TEST(AnswerAbandonedTest, AnswersEachUnavailableAndTellsTheObserver) {
  std::vector<absl::Status> answers;
  std::vector<std::unique_ptr<InferenceTask>> tasks;
  for (int i = 0; i < 2; ++i) {
    auto task = std::make_unique<InferenceTask>();
    task->done = [&answers](absl::StatusOr<std::vector<SequenceResult>> r) {
      answers.push_back(r.status());
    };
    tasks.push_back(std::move(task));
  }
  CountingObserver observer;
  AnswerAbandoned(tasks, &observer);
  ASSERT_EQ(answers.size(), 2u);
  for (const absl::Status& status : answers) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(status.message()), HasSubstr("shut down"));
  }
  EXPECT_EQ(observer.depth, -2);
  AnswerAbandoned(tasks, nullptr);  // no observer: answers only
  EXPECT_EQ(answers.size(), 4u);
}

}  // namespace
}  // namespace biserve
