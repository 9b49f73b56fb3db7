#include "core/packed_layout.h"

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

}  // namespace biserve
