// Keras' BatchNormalization (at inference) and LayerNormalization on one
// row of features, in Keras' float order.
#pragma once

#include "absl/types/span.h"

namespace biserve {

// BatchNormalization at inference, folded per feature as Keras' backends
// compute it (tf.nn.batch_normalization, jax and torch alike):
// inv = rsqrt(variance + epsilon) * gamma, shift = beta - mean * inv.
// `gamma` and `beta` are empty when the layer has no scale or no center.
// Writes inv and shift, [features] each.
// REQUIRES: mean, variance, inv and shift have the same size; gamma and
// beta that size or empty.
void FoldBatchNormalization(absl::Span<const float> gamma,
                            absl::Span<const float> beta,
                            absl::Span<const float> mean,
                            absl::Span<const float> variance, float epsilon,
                            absl::Span<float> inv, absl::Span<float> shift);

// row[j] := row[j] * inv[j] + shift[j]: BatchNormalization's y = x * inv +
// (beta - mean * inv). REQUIRES: all three the same size.
void ScaleAndShift(absl::Span<const float> inv, absl::Span<const float> shift,
                   absl::Span<float> row);

// LayerNormalization of `row` in place: mean and variance over the row
// (Keras' moments: the mean of squared differences from the mean, summed
// here in double so that the row's length adds no rounding), then Keras'
// float order: inv = rsqrt(variance + epsilon) * gamma[j], y = x * inv +
// (beta[j] - mean * inv). `gamma` and `beta` are empty when the layer has no
// scale or no center. REQUIRES: gamma and beta empty or row's size.
void LayerNormalize(absl::Span<const float> gamma, absl::Span<const float> beta,
                    float epsilon, absl::Span<float> row);

}  // namespace biserve
