#include "core/bidirectional.h"

#include <vector>

#include "core/direction_runner.h"

namespace biserve {
namespace {

// Runs one direction: its input projection (one GEMM over every packed row
// of every sequence), then the recurrence.
void RunOne(const RnnDirection& d, const PackedLayout& layout,
            const RowMatrix& input, const uint8_t* keep,
            MaskedStepOutput masked_step_output, bool reverse_output,
            bool sequences, RowMatrix& h, RowMatrix& c, RowMatrix& output) {
  RowMatrix projection = input * d.kernel;  // [total_steps, G * units]
  projection.rowwise() += d.input_bias;
  if (sequences) output.resize(layout.total_steps(), d.units);
  DirectionBuffers buffers;
  buffers.projection = projection.data();
  buffers.projection_stride = projection.cols();
  buffers.h = h.data();
  buffers.c = c.size() > 0 ? c.data() : nullptr;
  buffers.output = sequences ? output.data() : nullptr;
  buffers.output_stride = d.units;
  std::vector<uint8_t> started;
  if (keep != nullptr) {
    started.assign(layout.batch_size(), 0);
    buffers.keep = keep;
    buffers.started = started.data();
    buffers.masked_step_output = masked_step_output;
  }
  RunDirection(d, layout, reverse_output, buffers);
  if (!sequences) {
    // The last output: the final h; Keras gives zeros for a sequence whose
    // every step was masked, TensorFlow.js the (initial) state.
    output = h;
    for (size_t i = 0; i < started.size(); ++i) {
      if (!started[i] && masked_step_output == MaskedStepOutput::kZeros) {
        output.row(i).setZero();
      }
    }
  }
}

}  // namespace

BidirectionalResult EvaluateBidirectional(
    const BidirectionalLayer& layer, const PackedLayout& layout,
    const RowMatrix& input, absl::Span<const RowMatrix> initial_state,
    const uint8_t* keep, ThreadPool& pool) {
  const int batch = layout.batch_size();
  const RnnDirection& fw = layer.forward;
  const RnnDirection& bw = layer.backward;
  BidirectionalResult result;

  // States start from the request's initial_state (first the forward
  // layer's, then the backward's) or zeros.
  auto init = [&](int index, int units) -> RowMatrix {
    if (initial_state.empty()) return RowMatrix::Zero(batch, units);
    return initial_state[index];
  };
  const int fw_states = fw.state_count();
  result.forward_h = init(0, fw.units);
  if (fw.cell == CellType::kLstm) result.forward_c = init(1, fw.units);
  result.backward_h = init(fw_states, bw.units);
  if (bw.cell == CellType::kLstm) {
    result.backward_c = init(fw_states + 1, bw.units);
  }

  pool.ParallelFor(2, [&](int task) {
    if (task == 0) {
      RunOne(fw, layout, input, keep, layer.masked_step_output,
             /*reverse_output=*/false, layer.return_sequences, result.forward_h,
             result.forward_c, result.forward);
    } else {
      RunOne(bw, layout, input, keep, layer.masked_step_output,
             /*reverse_output=*/true, layer.return_sequences, result.backward_h,
             result.backward_c, result.backward);
    }
  });

  const RowMatrix& y = result.forward;
  const RowMatrix& y_rev = result.backward;
  switch (layer.merge_mode) {
    case MergeMode::kConcat:
      result.merged.resize(y.rows(), y.cols() + y_rev.cols());
      result.merged << y, y_rev;
      break;
    case MergeMode::kSum:
      result.merged = y + y_rev;
      break;
    case MergeMode::kMul:
      result.merged = y.cwiseProduct(y_rev);
      break;
    case MergeMode::kAve:
      result.merged = (y + y_rev) / 2.0f;
      break;
    case MergeMode::kNone:
      break;
  }
  return result;
}

}  // namespace biserve
