#include "core/eval/global_pooling.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace biserve {
namespace {

// out := the maximum over the sequence's steps, per feature; a NaN anywhere
// stays NaN, as TensorFlow's reduce_max gives it.
void MaxOverSteps(const PackedLayout& layout, int i, const RowMatrix& x,
                  float* out) {
  const int64_t width = x.cols();
  const float* first = &x(layout.row(i, 0), 0);
  std::copy_n(first, width, out);
  for (int64_t t = 1; t < layout.length(i); ++t) {
    const float* row = &x(layout.row(i, t), 0);
    for (int64_t j = 0; j < width; ++j) {
      if (std::isnan(row[j]) || row[j] > out[j]) {
        if (!std::isnan(out[j])) out[j] = row[j];
      }
    }
  }
}

// out := the mean over the sequence's unmasked steps, per feature: summed
// in double and rounded once, so that no summation order of Keras' backends
// is closer to the exact mean. Every step masked: 0 / 0, NaN, as in Keras.
void AverageOverSteps(const PackedLayout& layout, int i, const RowMatrix& x,
                      const uint8_t* keep, std::vector<double>& sums,
                      float* out) {
  const int64_t width = x.cols();
  std::fill(sums.begin(), sums.end(), 0.0);
  int64_t count = 0;
  for (int64_t t = 0; t < layout.length(i); ++t) {
    const int64_t r = layout.row(i, t);
    if (keep != nullptr && keep[r] == 0) continue;
    ++count;
    const float* row = &x(r, 0);
    for (int64_t j = 0; j < width; ++j) sums[j] += row[j];
  }
  for (int64_t j = 0; j < width; ++j) {
    out[j] = static_cast<float>(sums[j] / static_cast<double>(count));
  }
}

}  // namespace

RowMatrix GlobalPool(const GlobalPoolingLayer& layer,
                     const PackedLayout& layout, const RowMatrix& x,
                     const uint8_t* keep) {
  RowMatrix pooled(layout.batch_size(), x.cols());  // [batch, D]
  std::vector<double> sums(x.cols());
  for (int i = 0; i < layout.batch_size(); ++i) {
    if (layer.pooling == PoolingType::kAverage) {
      AverageOverSteps(layout, i, x, keep, sums, &pooled(i, 0));
    } else {
      MaxOverSteps(layout, i, x, &pooled(i, 0));
    }
  }
  return pooled;
}

}  // namespace biserve
