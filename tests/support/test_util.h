// Small helpers the tests share.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "core/common/tensor.h"
#include "gtest/gtest.h"

namespace biserve::testing {

// Max |a - b| over two tensors of one shape; +inf when the shapes differ.
inline float MaxAbsDiff(const Tensor& a, const Tensor& b) {
  if (a.shape != b.shape || a.values.size() != b.values.size()) {
    return INFINITY;
  }
  float max = 0;
  for (size_t i = 0; i < a.values.size(); ++i) {
    max = std::max(max, std::abs(a.values[i] - b.values[i]));
  }
  return max;
}

// Every value within `tolerance`, absolute; or, with `relative`, within
// tolerance * max(1, |expected|) (unbounded activations can grow values far
// past 1, where float32 rounding is larger in absolute terms).
inline ::testing::AssertionResult TensorNear(const Tensor& actual,
                                             const Tensor& expected,
                                             float tolerance,
                                             bool relative = false) {
  if (actual.shape != expected.shape) {
    return ::testing::AssertionFailure()
           << "shape " << ShapeString(actual.shape) << ", expected "
           << ShapeString(expected.shape);
  }
  if (relative) {
    for (size_t i = 0; i < actual.values.size(); ++i) {
      const float allowed =
          tolerance * std::max(1.0f, std::abs(expected.values[i]));
      if (!(std::abs(actual.values[i] - expected.values[i]) <= allowed)) {
        return ::testing::AssertionFailure()
               << "value " << i << ": " << actual.values[i] << ", expected "
               << expected.values[i] << " (allowed difference " << allowed
               << ")";
      }
    }
    return ::testing::AssertionSuccess();
  }
  const float diff = MaxAbsDiff(actual, expected);
  if (!(diff <= tolerance)) {
    float largest = 0;
    for (float v : expected.values) largest = std::max(largest, std::abs(v));
    return ::testing::AssertionFailure()
           << "max abs diff " << diff << " > " << tolerance
           << " (largest expected magnitude " << largest << ")";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace biserve::testing
