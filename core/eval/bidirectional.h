// EvaluateBidirectional: one Keras Bidirectional layer over a packed batch.
#pragma once

#include <vector>

#include "absl/types/span.h"
#include "core/common/eigen_types.h"
#include "core/common/thread_pool.h"
#include "core/kernels/packed_layout.h"
#include "core/model/model.h"

namespace biserve {

// Everything a Bidirectional layer produces for a batch. Rows are packed
// steps ([total_steps, ...], see PackedLayout) when the layer returns
// sequences, else sequences in sorted order ([batch, ...]).
struct BidirectionalResult {
  // The directions' outputs. Empty for a layer that concatenates sequences
  // unless asked for (keep_directions): its directions write straight into
  // `merged`.
  RowMatrix forward;   // [rows, forward.units]
  RowMatrix backward;  // [rows, backward.units], aligned to input time
  RowMatrix merged;    // [rows, output_size]; empty for merge mode none
  // Final states, [batch, units] in sorted order, one per layer.states
  // entry (Keras' order).
  std::vector<RowMatrix> states;
};

// Evaluates `layer` on `input` ([total_steps, input_size] packed rows),
// running the two directions as two tasks on `pool`.
// `initial_state` is empty (zeros) or one [batch, units] matrix in sorted
// order per layer.states entry (Keras' order).
// `keep` is Keras' mask, one byte per packed row (0: skip the step), or null.
// `keep_directions`: fill result.forward and result.backward whatever the
// merge mode.
BidirectionalResult EvaluateBidirectional(
    const BidirectionalLayer& layer, const PackedLayout& layout,
    const RowMatrix& input, absl::Span<const RowMatrix> initial_state,
    const uint8_t* keep, bool keep_directions, ThreadPool& pool);

}  // namespace biserve
