#include "core/kernels/activation.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace biserve {
namespace {

using ::testing::HasSubstr;

float Apply(absl::string_view name, float x) {
  auto activation = ParseActivation(name);
  EXPECT_TRUE(activation.ok()) << name;
  std::vector<float> row = {x};
  Activate(*activation, absl::MakeSpan(row));
  return row[0];
}

// Expected values from the definitions in Keras' activations module,
// computed in double.
TEST(ActivationTest, MatchesKerasDefinitions) {
  for (double x : {-3.5, -1.0, -0.25, 0.0, 0.3, 1.7, 4.0}) {
    SCOPED_TRACE(x);
    const double sig = 1.0 / (1.0 + std::exp(-x));
    EXPECT_NEAR(Apply("linear", x), x, 1e-7);
    EXPECT_NEAR(Apply("tanh", x), std::tanh(x), 1e-6);
    EXPECT_NEAR(Apply("sigmoid", x), sig, 1e-6);
    EXPECT_NEAR(Apply("hard_sigmoid", x),
                std::min(1.0, std::max(0.0, 0.2 * x + 0.5)), 1e-6);
    EXPECT_NEAR(Apply("hard_sigmoid_keras3", x),
                std::min(6.0, std::max(0.0, x + 3.0)) / 6.0, 1e-6);
    EXPECT_NEAR(Apply("relu", x), std::max(0.0, x), 1e-7);
    EXPECT_NEAR(Apply("relu6", x), std::min(6.0, std::max(0.0, x)), 1e-7);
    EXPECT_NEAR(Apply("elu", x), x > 0 ? x : std::exp(x) - 1, 1e-6);
    EXPECT_NEAR(Apply("selu", x),
                1.0507009873554805 *
                    (x > 0 ? x : 1.6732632423543772 * (std::exp(x) - 1)),
                1e-5);
    EXPECT_NEAR(Apply("softsign", x), x / (1 + std::abs(x)), 1e-6);
    EXPECT_NEAR(Apply("softplus", x), std::log(1 + std::exp(x)), 1e-6);
    EXPECT_NEAR(Apply("swish", x), x * sig, 1e-6);
    EXPECT_NEAR(Apply("silu", x), x * sig, 1e-6);
    EXPECT_NEAR(Apply("gelu", x), 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))),
                1e-6);
    EXPECT_NEAR(Apply("exponential", x), std::exp(x), 1e-4);
  }
}

TEST(ActivationTest, KerasTwoAndThreeHardSigmoidsDiffer) {
  EXPECT_NEAR(Apply("hard_sigmoid", 1.0f), 0.7f, 1e-6);
  EXPECT_NEAR(Apply("hard_sigmoid_keras3", 1.0f), 0.5f + 1.0f / 6, 1e-6);
}

TEST(ActivationTest, SoftplusDoesNotOverflow) {
  EXPECT_NEAR(Apply("softplus", 200.0f), 200.0f, 1e-3);
  EXPECT_NEAR(Apply("softplus", -200.0f), 0.0f, 1e-6);
}

TEST(ActivationTest, SoftmaxNormalisesTheRowStably) {
  std::vector<float> row = {1000.0f, 1001.0f, 1002.0f};
  Activate(Activation::kSoftmax, absl::MakeSpan(row));
  const double e1 = std::exp(-2.0), e2 = std::exp(-1.0), sum = e1 + e2 + 1;
  EXPECT_NEAR(row[0], e1 / sum, 1e-6);
  EXPECT_NEAR(row[1], e2 / sum, 1e-6);
  EXPECT_NEAR(row[2], 1 / sum, 1e-6);
}

TEST(ActivationTest, LogSoftmaxIsTheLogOfSoftmaxStably) {
  std::vector<float> row = {1000.0f, 1001.0f, 1002.0f};
  Activate(Activation::kLogSoftmax, absl::MakeSpan(row));
  const double e1 = std::exp(-2.0), e2 = std::exp(-1.0), sum = e1 + e2 + 1;
  EXPECT_NEAR(row[0], std::log(e1 / sum), 1e-6);
  EXPECT_NEAR(row[1], std::log(e2 / sum), 1e-6);
  EXPECT_NEAR(row[2], std::log(1 / sum), 1e-6);
}

TEST(ActivationTest, NamesRoundTrip) {
  for (absl::string_view name :
       {"linear", "tanh", "sigmoid", "hard_sigmoid", "hard_sigmoid_keras3",
        "relu", "relu6", "elu", "selu", "softsign", "softplus", "swish", "gelu",
        "exponential", "softmax", "log_softmax"}) {
    auto activation = ParseActivation(name);
    ASSERT_TRUE(activation.ok()) << name;
    EXPECT_EQ(ActivationName(*activation), name);
  }
  EXPECT_EQ(ActivationName(*ParseActivation("silu")), "swish");
}

TEST(ActivationTest, UnknownNameListsTheKnownOnes) {
  auto activation = ParseActivation("Tanh");
  EXPECT_EQ(activation.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(activation.status().message(),
              HasSubstr("unknown activation 'Tanh'; expected one of: linear, "
                        "tanh,"));
}

}  // namespace
}  // namespace biserve
