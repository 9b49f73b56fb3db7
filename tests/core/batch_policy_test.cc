#include "core/batching/batch_policy.h"

#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;

// An arbitrary fixed time; the policy only compares times.
constexpr absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

absl::Time AtUs(int64_t us) { return kT0 + absl::Microseconds(us); }

// A task of `sequences` sequences of `length` steps each, enqueued at
// kT0 + `enqueued_us`.
QueuedTaskInfo Task(int64_t enqueued_us, int sequences, int64_t length) {
  return QueuedTaskInfo{AtUs(enqueued_us), sequences, sequences * length};
}

BatchingOptions Caps(int max_batch_size, int64_t max_batch_steps,
                     int64_t max_queue_delay_us = 1000) {
  BatchingOptions options;
  options.max_batch_size = max_batch_size;
  options.max_batch_steps = max_batch_steps;
  options.max_queue_delay_us = max_queue_delay_us;
  return options;
}

// --- FitsInBatch ---

TEST(FitsInBatchTest, AnEmptyBatchTakesATaskOverBothCaps) {
  EXPECT_TRUE(FitsInBatch({}, Task(0, 9, 100), Caps(4, 50)));
}

TEST(FitsInBatchTest, SequencesUpToMaxBatchSizeFitAndOneMoreDoesNot) {
  const BatchingOptions caps = Caps(4, 1000);
  EXPECT_TRUE(FitsInBatch({3, 3}, Task(0, 1, 1), caps));
  EXPECT_FALSE(FitsInBatch({3, 3}, Task(0, 2, 1), caps));
  EXPECT_FALSE(FitsInBatch({4, 4}, Task(0, 1, 1), caps));
}

TEST(FitsInBatchTest, StepsUpToMaxBatchStepsFitAndOneMoreDoesNot) {
  const BatchingOptions caps = Caps(100, 50);
  EXPECT_TRUE(FitsInBatch({1, 40}, Task(0, 1, 10), caps));
  EXPECT_FALSE(FitsInBatch({1, 40}, Task(0, 1, 11), caps));
  // Steps count every sequence of the task: 2 x 6 = 12 > 10 left.
  EXPECT_FALSE(FitsInBatch({1, 40}, Task(0, 2, 6), caps));
}

// --- FillsBatch and QueueDeadline ---

TEST(BatchPolicyTest, EmptyQueueFillsNoBatch) {
  EXPECT_FALSE(FillsBatch({}, Caps(4, 100)));
}

TEST(BatchPolicyTest, QueueUnderBothCapsFillsNoBatch) {
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 10), Task(1, 2, 10)};
  EXPECT_FALSE(FillsBatch(queue, Caps(4, 100)));
}

TEST(BatchPolicyTest, QueueReachingMaxBatchSizeExactlyFillsABatch) {
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 1), Task(1, 3, 1)};
  EXPECT_TRUE(FillsBatch(queue, Caps(4, 100)));
}

TEST(BatchPolicyTest, QueueReachingMaxBatchStepsExactlyFillsABatch) {
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 60), Task(1, 1, 40)};
  EXPECT_TRUE(FillsBatch(queue, Caps(64, 100)));
}

TEST(BatchPolicyTest, QueueWhoseNextTaskWouldSpillFillsABatch) {
  // 3 sequences + 2 more would exceed 4, although 3 < 4.
  EXPECT_TRUE(FillsBatch({Task(0, 3, 1), Task(1, 2, 1)}, Caps(4, 100)));
  // 60 steps + 50 more would exceed 100, although 60 < 100.
  EXPECT_TRUE(FillsBatch({Task(0, 1, 60), Task(1, 1, 50)}, Caps(64, 100)));
}

TEST(BatchPolicyTest, ALoneTaskOverTheCapsFillsABatch) {
  EXPECT_TRUE(FillsBatch({Task(0, 1, 500)}, Caps(64, 100)));
  EXPECT_TRUE(FillsBatch({Task(0, 9, 1)}, Caps(4, 100)));
}

TEST(BatchPolicyTest, QueueDeadlineIsTheOldestTaskPlusTheDelay) {
  const std::vector<QueuedTaskInfo> queue = {Task(30, 1, 1), Task(70, 1, 1)};
  EXPECT_EQ(QueueDeadline(queue, Caps(4, 100, 250)), AtUs(280));
}

TEST(BatchPolicyTest, EmptyQueueHasNoDeadline) {
  EXPECT_EQ(QueueDeadline({}, Caps(4, 100)), absl::InfiniteFuture());
}

// --- QueueReady ---

TEST(QueueReadyTest, EmptyQueueIsNeverReadyEvenWhenIdle) {
  EXPECT_FALSE(QueueReady({}, Caps(4, 100), AtUs(1'000'000), /*idle=*/true));
}

TEST(QueueReadyTest, QueueIsReadyWhenItFillsABatch) {
  const std::vector<QueuedTaskInfo> queue = {Task(0, 2, 1), Task(1, 2, 1)};
  EXPECT_TRUE(QueueReady(queue, Caps(4, 100), AtUs(1), /*idle=*/false));
}

TEST(QueueReadyTest, QueueIsReadyOnceItsOldestTaskWaitedTheDelay) {
  const std::vector<QueuedTaskInfo> queue = {Task(100, 1, 1), Task(900, 1, 1)};
  const BatchingOptions caps = Caps(4, 100, 1000);
  EXPECT_FALSE(QueueReady(queue, caps, AtUs(1099), /*idle=*/false));
  EXPECT_TRUE(QueueReady(queue, caps, AtUs(1100), /*idle=*/false));
  EXPECT_TRUE(QueueReady(queue, caps, AtUs(5000), /*idle=*/false));
}

TEST(QueueReadyTest, QueueIsReadyAtOnceWhenNoBatchRuns) {
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 1)};
  EXPECT_TRUE(QueueReady(queue, Caps(4, 100, 1000), AtUs(0), /*idle=*/true));
}

TEST(QueueReadyTest, PartialFreshQueueWaitsWhileABatchRuns) {
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 1), Task(10, 2, 1)};
  EXPECT_FALSE(
      QueueReady(queue, Caps(4, 100, 1000), AtUs(999), /*idle=*/false));
}

TEST(QueueReadyTest, ZeroDelayMakesEveryNonEmptyQueueReady) {
  EXPECT_TRUE(
      QueueReady({Task(5, 1, 1)}, Caps(4, 100, 0), AtUs(5), /*idle=*/false));
}

// --- FormBatch ---

TEST(FormBatchTest, SingleBatchWorthIsTakenWholeInArrivalOrder) {
  // Lengths far apart: with less than a batch queued, length plays no part.
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 50), Task(1, 1, 2),
                                             Task(2, 1, 49), Task(3, 1, 1)};
  EXPECT_THAT(FormBatch(queue, Caps(8, 1000), AtUs(10)),
              ElementsAre(0, 1, 2, 3));
}

TEST(FormBatchTest, ALoneTaskIsABatch) {
  EXPECT_THAT(FormBatch({Task(0, 2, 3)}, Caps(8, 100), AtUs(0)),
              ElementsAre(0));
}

TEST(FormBatchTest, TaskOverTheCapsRunsAlone) {
  const BatchingOptions caps = Caps(4, 100);
  // First in line: it is the batch, and nothing joins it.
  EXPECT_THAT(FormBatch({Task(0, 1, 500), Task(1, 1, 1), Task(2, 1, 1)}, caps,
                        AtUs(10)),
              ElementsAre(0));
  // Behind others: they leave it out, and it runs alone next.
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 1), Task(1, 1, 500),
                                             Task(2, 1, 1)};
  EXPECT_THAT(FormBatch(queue, caps, AtUs(10)), ElementsAre(0, 2));
  EXPECT_THAT(FormBatch({queue[1]}, caps, AtUs(10)), ElementsAre(0));
}

TEST(FormBatchTest, BatchStopsAtMaxBatchSize) {
  std::vector<QueuedTaskInfo> queue;
  for (int i = 0; i < 7; ++i) queue.push_back(Task(i, 1, 5));
  // Equal lengths: the similar-length order is the arrival order.
  EXPECT_THAT(FormBatch(queue, Caps(3, 1000), AtUs(10)), ElementsAre(0, 1, 2));
}

TEST(FormBatchTest, BatchStopsAtMaxBatchSteps) {
  std::vector<QueuedTaskInfo> queue;
  for (int i = 0; i < 7; ++i) queue.push_back(Task(i, 1, 30));
  // 3 x 30 = 90 <= 100; a fourth would make 120.
  EXPECT_THAT(FormBatch(queue, Caps(64, 100), AtUs(10)), ElementsAre(0, 1, 2));
}

TEST(FormBatchTest, OldestTaskIsAlwaysTakenHoweverDissimilar) {
  // Two batches' worth; the others are all alike, the oldest is not.
  std::vector<QueuedTaskInfo> queue = {Task(0, 1, 90)};
  for (int i = 1; i <= 6; ++i) queue.push_back(Task(i, 1, 5));
  std::vector<size_t> batch = FormBatch(queue, Caps(3, 1000), AtUs(10));
  ASSERT_FALSE(batch.empty());
  EXPECT_EQ(batch[0], 0u);
  EXPECT_EQ(batch.size(), 3u);
}

TEST(FormBatchTest, MoreThanABatchQueuedTakesTheMostSimilarMeanLength) {
  // Oldest: mean 10. Distances: 8, 8, 1, 1, 7 -> tasks 3 and 4.
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 10), Task(1, 1, 2),
                                             Task(2, 1, 2),  Task(3, 1, 11),
                                             Task(4, 1, 9),  Task(5, 1, 3)};
  EXPECT_THAT(FormBatch(queue, Caps(3, 1000), AtUs(10)), ElementsAre(0, 3, 4));
}

TEST(FormBatchTest, SimilarityUsesTheMeanLengthOfATasksSequences) {
  // Oldest: mean 10. Task 1: 1 x 20 steps, mean 20. Task 2: 2 x 10 steps,
  // mean 10, though its total (20) equals task 1's. Room for 2 more
  // sequences: task 2 takes it, and task 1 no longer fits.
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 10), Task(1, 1, 20),
                                             Task(2, 2, 10), Task(3, 1, 30)};
  EXPECT_THAT(FormBatch(queue, Caps(3, 1000), AtUs(10)), ElementsAre(0, 2));
}

TEST(FormBatchTest, EqualDistancesKeepArrivalOrder) {
  // Tasks 1 (mean 8) and 2 (mean 12) are both 2 from the oldest's 10; only
  // one more fits, and the older one wins.
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 10), Task(1, 1, 8),
                                             Task(2, 1, 12), Task(3, 1, 40)};
  EXPECT_THAT(FormBatch(queue, Caps(2, 1000), AtUs(10)), ElementsAre(0, 1));
}

TEST(FormBatchTest, SimilarTaskThatDoesNotFitIsSkippedForTheNextThatDoes) {
  // Steps cap 25: the oldest has 10, so 15 remain. Task 1 (mean 10) is the
  // most similar but has 2 sequences, 20 steps; task 2 (mean 14) fits.
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 10), Task(1, 2, 10),
                                             Task(2, 1, 14), Task(3, 1, 1)};
  EXPECT_THAT(FormBatch(queue, Caps(8, 25), AtUs(10)), ElementsAre(0, 2, 3));
}

TEST(FormBatchTest, ExpiredTasksGoFirstOldestFirstWhateverTheirLength) {
  // Delay 1000 us; at 1500 us, tasks enqueued at <= 500 us have expired:
  // 0, 1 and 2. The fresh tasks 3 to 6 are all like the oldest; the
  // expired ones are not, and still go first.
  const std::vector<QueuedTaskInfo> queue = {
      Task(0, 1, 10),   Task(100, 1, 90), Task(500, 1, 80), Task(900, 1, 10),
      Task(901, 1, 10), Task(902, 1, 10), Task(903, 1, 10)};
  EXPECT_THAT(FormBatch(queue, Caps(4, 1000, 1000), AtUs(1500)),
              ElementsAre(0, 1, 2, 3));
}

TEST(FormBatchTest, ExpiredTasksBeyondTheCapsWaitForTheNextBatch) {
  // All expired; 2 fit. The oldest two go, in arrival order, whatever the
  // lengths of the later ones.
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 10), Task(1, 1, 70),
                                             Task(2, 1, 10), Task(3, 1, 10)};
  EXPECT_THAT(FormBatch(queue, Caps(2, 1000, 100), AtUs(5000)),
              ElementsAre(0, 1));
}

TEST(FormBatchTest, ExpiredTaskThatDoesNotFitLetsALaterExpiredOneIn) {
  // All expired. Task 1 would pass the 30-step cap; task 2 fits.
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 10), Task(1, 1, 25),
                                             Task(2, 1, 5), Task(3, 1, 15)};
  EXPECT_THAT(FormBatch(queue, Caps(8, 30, 100), AtUs(5000)),
              ElementsAre(0, 2, 3));
}

TEST(FormBatchTest, TaskExpiresExactlyAtTheDelay) {
  // Task 1, enqueued at 500 us with a 1000 us delay, expires at 1500 us.
  const std::vector<QueuedTaskInfo> queue = {
      Task(0, 1, 10), Task(500, 1, 90), Task(600, 1, 10), Task(700, 1, 10)};
  const BatchingOptions caps = Caps(2, 1000, 1000);
  EXPECT_THAT(FormBatch(queue, caps, AtUs(1499)), ElementsAre(0, 2));
  EXPECT_THAT(FormBatch(queue, caps, AtUs(1500)), ElementsAre(0, 1));
}

TEST(FormBatchTest, IndicesAreAscending) {
  // Chosen by similarity in the order 5, 3, 1; returned sorted.
  const std::vector<QueuedTaskInfo> queue = {Task(0, 1, 20), Task(1, 1, 17),
                                             Task(2, 1, 1),  Task(3, 1, 19),
                                             Task(4, 1, 2),  Task(5, 1, 20)};
  EXPECT_THAT(FormBatch(queue, Caps(4, 1000), AtUs(10)),
              ElementsAre(0, 1, 3, 5));
}

}  // namespace
}  // namespace biserve
