// RunDirection: one direction of a recurrent layer over a packed ragged batch.
//
// Bidirectional evaluation is two calls of this one runner: direction is a
// parameter (the layer's go_backwards for reading, the wrapper's flip for
// writing), never a second implementation. Rows are found by index mapping
// through PackedLayout, so a reversed walk copies nothing.
#pragma once

#include <cstdint>

#include "core/kernels/packed_layout.h"
#include "core/model/model.h"

namespace biserve {

// Borrowed buffers of one direction; the caller owns them all.
struct DirectionBuffers {
  // Input projection x * W + input_bias of every packed row:
  // [total_steps, G * units], row stride `projection_stride` floats.
  const float* projection = nullptr;
  int64_t projection_stride = 0;
  // State rows in sorted order, [batch, units]: the initial state on entry,
  // the final state of each sequence on return. `c` is for LSTM only.
  float* h = nullptr;
  float* c = nullptr;
  // Per-step outputs, [total_steps, units] packed rows with row stride
  // `output_stride`; null when the layer does not return sequences.
  float* output = nullptr;
  int64_t output_stride = 0;
  // Keras' mask, one byte per packed row: 0 marks a step to skip (its state
  // carries over, and so does the last output). Null: every step counts.
  const uint8_t* keep = nullptr;
  // With `keep`: [batch], zeros on entry; a row becomes 1 at its first kept
  // step (Keras' last output is zeros for a sequence with no kept step).
  uint8_t* started = nullptr;
  // What a skipped step outputs.
  MaskedStepOutput masked_step_output = MaskedStepOutput::kZeros;
};

// Runs `direction` over the sequences at sorted positions [first_row,
// end_row) of `layout` (the rows of the state and of `started`). Sequences
// never interact, so disjoint row ranges may run at the same time on
// different threads, with the same buffers. Sequence i reads its
// steps last-to-first when direction.go_backwards. Its output for processing
// step s goes to time s, or to time length(i) - 1 - s when `reverse_output`
// (Keras' Bidirectional flips the backward layer's outputs, so that they line
// up with the input's time steps).
//
// A skipped step (keep[row] == 0) leaves the state as it was and outputs
// zeros (Keras' Bidirectional) or the state h (TensorFlow.js), as
// `masked_step_output` says.
//
// The cell's step (SimpleRNN, LSTM, GRU with reset_after true or false) is
// chosen once per call. REQUIRES: direction.cell is set, as Model::Create
// guarantees; an unset cell aborts.
//
// Sequential and lock-free: the caller runs directions on its thread pool.
void RunDirection(const RnnDirection& direction, const PackedLayout& layout,
                  int first_row, int end_row, bool reverse_output,
                  const DirectionBuffers& buffers);

}  // namespace biserve
