#include "importers/weight_map.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace biserve::importers {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Weights of shape [1, 1] holding 1, 2, ... in the order listed.
WeightMap Weights(std::initializer_list<const char*> names) {
  WeightMap weights;
  float value = 1;
  for (const char* name : names) weights[name] = Weight{{1, 1}, {value++}};
  return weights;
}

TEST(TakeWeightTest, TakesTheWeightUnderThePrefixAndMarksItUsed) {
  WeightMap weights = Weights({"dense/kernel", "dense/bias"});
  v1::Tensor out;
  ASSERT_TRUE(TakeWeight(weights, "dense", "bias", "here", &out).ok());
  EXPECT_THAT(out.shape(), ElementsAre(1, 1));
  EXPECT_THAT(out.values(), ElementsAre(2.0f));  // the second listed
  EXPECT_TRUE(weights["dense/bias"].used);
  EXPECT_FALSE(weights["dense/kernel"].used);
  EXPECT_EQ(FirstUnusedWeight(weights), "dense/kernel");
}

TEST(TakeWeightTest, PrefixEndsAtANameBoundary) {
  WeightMap weights = Weights({"dense_1/kernel"});
  v1::Tensor out;
  const absl::Status s = TakeWeight(weights, "dense", "kernel", "here", &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("here: weight 'kernel' is missing"));
}

TEST(TakeWeightTest, DirectionPrefixMatchesKerasDirectionNames) {
  WeightMap weights = Weights({"bidi/forward_lstm/lstm_cell/kernel",
                               "bidi/backward_lstm/lstm_cell/kernel"});
  v1::Tensor out;
  ASSERT_TRUE(
      TakeWeight(weights, "bidi/backward", "kernel", "here", &out).ok());
  EXPECT_THAT(out.values(), ElementsAre(2.0f));
  EXPECT_TRUE(weights["bidi/backward_lstm/lstm_cell/kernel"].used);
}

TEST(TakeWeightTest, TwoMatchesAreAnError) {
  WeightMap weights = Weights({"rnn/a/kernel", "rnn/b/kernel"});
  v1::Tensor out;
  const absl::Status s = TakeWeight(weights, "rnn", "kernel", "here", &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("two weights match 'rnn/.../kernel'"));
}

TEST(FirstUnusedWeightTest, NoneWhenAllTaken) {
  WeightMap weights = Weights({"a/kernel"});
  weights["a/kernel"].used = true;
  EXPECT_EQ(FirstUnusedWeight(weights), std::nullopt);
}

}  // namespace
}  // namespace biserve::importers
