#include "core/kernels/packed_layout.h"

#include <algorithm>
#include <cassert>
#include <numeric>

namespace biserve {

PackedLayout::PackedLayout(absl::Span<const int64_t> lengths)
    : order_(lengths.size()) {
  std::iota(order_.begin(), order_.end(), 0);
  std::stable_sort(order_.begin(), order_.end(),
                   [&](int a, int b) { return lengths[a] > lengths[b]; });
  sorted_lengths_.reserve(lengths.size());
  for (int index : order_) {
    assert(lengths[index] >= 1);
    sorted_lengths_.push_back(lengths[index]);
  }
  const int64_t max_length = order_.empty() ? 0 : sorted_lengths_.front();
  alive_.assign(max_length, 0);
  offsets_.assign(max_length, 0);
  // Lengths are sorted, so alive(t) only shrinks as t grows.
  int alive = batch_size();
  for (int64_t t = 0; t < max_length; ++t) {
    while (alive > 0 && sorted_lengths_[alive - 1] <= t) --alive;
    alive_[t] = alive;
    offsets_[t] = total_steps_;
    total_steps_ += alive;
  }
}

std::vector<int> PackedLayout::SplitSequences(int parts) const {
  const int batch = batch_size();
  parts = std::max(1, std::min(parts, batch));
  std::vector<int> bounds = {0};
  int64_t done = 0;
  int row = 0;
  for (int p = 1; p < parts; ++p) {
    const int64_t target = total_steps_ * p / parts;
    done += length(row++);  // every part gets at least one sequence
    // ... and as many more as keep it under its share, leaving at least one
    // for every part after it.
    while (row < batch - (parts - p) && done + length(row) <= target) {
      done += length(row++);
    }
    bounds.push_back(row);
  }
  bounds.push_back(batch);
  return bounds;
}

}  // namespace biserve
