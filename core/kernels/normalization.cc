#include "core/kernels/normalization.h"

#include <cmath>
#include <cstddef>

namespace biserve {
namespace {

// Keras' rsqrt(v) as 1 / sqrt(v) in float: the backends' own rsqrt kernels
// may differ from it by an ulp, and differ from each other too.
float Rsqrt(float v) { return 1.0f / std::sqrt(v); }

}  // namespace

void FoldBatchNormalization(absl::Span<const float> gamma,
                            absl::Span<const float> beta,
                            absl::Span<const float> mean,
                            absl::Span<const float> variance, float epsilon,
                            absl::Span<float> inv, absl::Span<float> shift) {
  for (size_t j = 0; j < mean.size(); ++j) {
    float scale = Rsqrt(variance[j] + epsilon);
    if (!gamma.empty()) scale *= gamma[j];
    const float offset = -mean[j] * scale;
    inv[j] = scale;
    shift[j] = beta.empty() ? offset : offset + beta[j];
  }
}

void ScaleAndShift(absl::Span<const float> inv, absl::Span<const float> shift,
                   absl::Span<float> row) {
  for (size_t j = 0; j < row.size(); ++j) row[j] = row[j] * inv[j] + shift[j];
}

void LayerNormalize(absl::Span<const float> gamma, absl::Span<const float> beta,
                    float epsilon, absl::Span<float> row) {
  const size_t n = row.size();
  double sum = 0.0;
  for (float x : row) sum += x;
  const double mean64 = sum / static_cast<double>(n);
  double squares = 0.0;
  for (float x : row) squares += (x - mean64) * (x - mean64);
  const float mean = static_cast<float>(mean64);
  const float variance = static_cast<float>(squares / static_cast<double>(n));
  const float base = Rsqrt(variance + epsilon);
  for (size_t j = 0; j < n; ++j) {
    const float inv = gamma.empty() ? base : base * gamma[j];
    const float offset = -mean * inv;
    const float shift = beta.empty() ? offset : offset + beta[j];
    row[j] = row[j] * inv + shift;
  }
}

}  // namespace biserve
