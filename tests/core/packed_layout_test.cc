#include "core/kernels/packed_layout.h"

#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace biserve {
namespace {

using ::testing::ElementsAre;

TEST(PackedLayoutTest, SortsLongestFirstKeepingRequestOrderOnTies) {
  const std::vector<int64_t> lengths = {2, 5, 2, 7};
  PackedLayout layout(lengths);
  ASSERT_EQ(layout.batch_size(), 4);
  EXPECT_EQ(layout.request_index(0), 3);
  EXPECT_EQ(layout.request_index(1), 1);
  EXPECT_EQ(layout.request_index(2), 0);
  EXPECT_EQ(layout.request_index(3), 2);
  EXPECT_EQ(layout.length(0), 7);
  EXPECT_EQ(layout.max_length(), 7);
}

TEST(PackedLayoutTest, PacksExactlyTheRealStepsWithNoPadding) {
  const std::vector<int64_t> lengths = {3, 1, 4, 1, 5};
  PackedLayout layout(lengths);
  EXPECT_EQ(layout.total_steps(), 14);
  // Every (sequence, step) has its own row, and the rows are 0..13.
  std::set<int64_t> rows;
  for (int i = 0; i < layout.batch_size(); ++i) {
    for (int64_t t = 0; t < layout.length(i); ++t) {
      rows.insert(layout.row(i, t));
    }
  }
  EXPECT_EQ(rows.size(), 14u);
  EXPECT_EQ(*rows.begin(), 0);
  EXPECT_EQ(*rows.rbegin(), 13);
}

TEST(PackedLayoutTest, LiveSequencesAreAPrefixThatShrinks) {
  const std::vector<int64_t> lengths = {3, 1, 4, 1, 5};
  PackedLayout layout(lengths);
  const std::vector<int> expected = {5, 3, 3, 2, 1};
  for (int64_t t = 0; t < layout.max_length(); ++t) {
    EXPECT_EQ(layout.alive(t), expected[t]) << t;
    for (int i = 0; i < layout.alive(t); ++i) EXPECT_GT(layout.length(i), t);
  }
}

TEST(PackedLayoutTest, SplitsSequencesIntoRangesOfAboutEqualSteps) {
  // Sorted: 9, 5, 4, 3, 2, 1 (24 steps).
  const PackedLayout layout(std::vector<int64_t>{3, 9, 1, 4, 5, 2});
  EXPECT_THAT(layout.SplitSequences(1), ElementsAre(0, 6));
  EXPECT_THAT(layout.SplitSequences(2), ElementsAre(0, 1, 6));     // 9 | 15
  EXPECT_THAT(layout.SplitSequences(3), ElementsAre(0, 1, 2, 6));  // 9|5|10
  // More parts than sequences: one sequence each.
  EXPECT_THAT(layout.SplitSequences(10), ElementsAre(0, 1, 2, 3, 4, 5, 6));
  // Equal lengths split evenly.
  const PackedLayout even(std::vector<int64_t>(8, 50));
  EXPECT_THAT(even.SplitSequences(4), ElementsAre(0, 2, 4, 6, 8));
  EXPECT_THAT(PackedLayout({}).SplitSequences(3), ElementsAre(0, 0));
}

TEST(PackedLayoutTest, EmptyBatch) {
  PackedLayout layout(std::vector<int64_t>{});
  EXPECT_EQ(layout.batch_size(), 0);
  EXPECT_EQ(layout.total_steps(), 0);
  EXPECT_EQ(layout.max_length(), 0);
}

}  // namespace
}  // namespace biserve
