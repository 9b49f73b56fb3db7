#include "core/kernels/vector_math.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace biserve {
namespace {

// Dense samples over [-20, 20], an odd count so that vector loops have a
// tail, against the double-precision functions.
std::vector<float> Samples() {
  std::vector<float> x;
  for (int i = 0; i <= 40001; ++i) x.push_back(-20.0f + i * 0.001f);
  return x;
}

TEST(VectorMathTest, TanhIsAccurateEverywhere) {
  std::vector<float> x = Samples();
  const std::vector<float> in = x;
  TanhInPlace(x.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_NEAR(x[i], std::tanh(static_cast<double>(in[i])), 5e-7) << in[i];
  }
}

TEST(VectorMathTest, SigmoidIsAccurateEverywhere) {
  std::vector<float> x = Samples();
  const std::vector<float> in = x;
  SigmoidInPlace(x.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_NEAR(x[i], 1.0 / (1.0 + std::exp(-static_cast<double>(in[i]))), 5e-7)
        << in[i];
  }
}

TEST(VectorMathTest, SaturatesAndHandlesEmptyInput) {
  std::vector<float> x = {-1e30f, 1e30f};
  TanhInPlace(x.data(), 2);
  EXPECT_NEAR(x[0], -1.0f, 5e-7);
  EXPECT_NEAR(x[1], 1.0f, 5e-7);
  TanhInPlace(nullptr, 0);
  SigmoidInPlace(nullptr, 0);
}

}  // namespace
}  // namespace biserve
