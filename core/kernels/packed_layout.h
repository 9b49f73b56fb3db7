// PackedLayout: where each time step of each sequence of a ragged batch lives
// in a packed, time-major buffer, with no padding.
//
// Sequences are sorted longest first (ties keep request order). Step t holds
// the alive(t) sequences still running, sorted indices 0..alive(t)-1, in rows
// offset(t) .. offset(t) + alive(t) - 1. So every step's live rows are a
// prefix of the batch, and a recurrence step is one GEMM over that prefix;
// the backward direction walks each sequence from its own last step, and its
// live set at step s is the same prefix.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace biserve {

class PackedLayout {
 public:
  // REQUIRES: every length >= 1 (callers validate requests first).
  explicit PackedLayout(absl::Span<const int64_t> lengths);

  int batch_size() const { return static_cast<int>(order_.size()); }
  int64_t max_length() const { return static_cast<int64_t>(alive_.size()); }
  int64_t total_steps() const { return total_steps_; }

  // Request index of the sequence at sorted position i.
  int request_index(int i) const { return order_[i]; }
  // Length of the sequence at sorted position i.
  int64_t length(int i) const { return sorted_lengths_[i]; }
  // Sequences with length > t.
  int alive(int64_t t) const { return alive_[t]; }
  // Packed row of sorted sequence i at time t. REQUIRES: t < length(i).
  int64_t row(int i, int64_t t) const { return offsets_[t] + i; }

  // Splits sorted sequences [0, batch) into min(parts, batch) contiguous
  // ranges (at least one) of about equal steps, each non-empty when the
  // batch is. Returns the ranges' boundaries: 0, ..., batch_size().
  std::vector<int> SplitSequences(int parts) const;

 private:
  std::vector<int> order_;
  std::vector<int64_t> sorted_lengths_;
  std::vector<int> alive_;        // [max_length]
  std::vector<int64_t> offsets_;  // [max_length]
  int64_t total_steps_ = 0;
};

}  // namespace biserve
