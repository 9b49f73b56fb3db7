#include "core/eval/bidirectional.h"

#include <algorithm>
#include <vector>

#include "core/eval/direction_runner.h"

namespace biserve {
namespace {

// Runs tasks 0 .. n-1 on the pool, or on this thread when the work is small.
void Run(ThreadPool& pool, bool parallel, int n,
         absl::FunctionRef<void(int)> task) {
  if (parallel) {
    pool.ParallelFor(n, task);
  } else {
    for (int i = 0; i < n; ++i) task(i);
  }
}

}  // namespace

BidirectionalResult EvaluateBidirectional(
    const BidirectionalLayer& layer, const PackedLayout& layout,
    const RowMatrix& input, absl::Span<const RowMatrix> initial_state,
    const uint8_t* keep, bool keep_directions, ThreadPool& pool) {
  const int batch = layout.batch_size();
  const int64_t total = layout.total_steps();
  const RnnDirection* directions[2] = {&layer.forward, &layer.backward};
  BidirectionalResult result;
  RowMatrix* outputs[2] = {&result.forward, &result.backward};
  RowMatrix* h[2] = {&result.forward_h, &result.backward_h};
  RowMatrix* c[2] = {&result.forward_c, &result.backward_c};

  // States start from the request's initial_state (the forward layer's,
  // then the backward's) or zeros.
  int state_index = 0;
  for (int d = 0; d < 2; ++d) {
    const RnnDirection& dir = *directions[d];
    auto next = [&]() -> RowMatrix {
      const int index = state_index++;
      if (initial_state.empty()) return RowMatrix::Zero(batch, dir.units);
      return initial_state[index];
    };
    *h[d] = next();
    if (dir.cell == CellType::kLstm) *c[d] = next();
  }

  double flops = 0;  // this layer's multiply-adds x 2, for the cost model
  for (const RnnDirection* d : directions) {
    flops += 2.0 * total * d->gates() * d->units * (d->input_size + d->units);
  }
  const bool parallel = pool.WorthParallel(flops);
  // Two directions fill two threads; more threads split the sequences too.
  const int ranges = parallel ? std::max(1, pool.num_threads() / 2) : 1;
  const std::vector<int> rows = layout.SplitSequences(ranges);
  const int row_ranges = static_cast<int>(rows.size()) - 1;

  // Each direction's input projection: one GEMM over every step of every
  // sequence, [total_steps, input] x [input, G * units]. Per direction
  // rather than one GEMM for both: it keeps each direction's rows
  // contiguous and, with one row range, lets a direction's task project and
  // recur with no fork-join between (measured: the fused GEMM as a separate
  // parallel phase cost 21% on W1b and 5% on W3 at two threads).
  RowMatrix projection[2];
  // Projection row widths: G * units, or whole panels for PackedGemm.
  int64_t width_of[2];
  for (int d = 0; d < 2; ++d) {
    const RnnDirection& dir = *directions[d];
    width_of[d] = dir.kernel_packed.rows() > 0
                      ? dir.kernel_packed.padded_cols()
                      : static_cast<int64_t>(dir.gates()) * dir.units;
  }
  auto project = [&](int d, int64_t first, int64_t count) {
    if (count <= 0) return;
    const RnnDirection& dir = *directions[d];
    const int64_t width = static_cast<int64_t>(dir.gates()) * dir.units;
    if (dir.kernel_packed.rows() > 0) {
      // The packed kernel carries the input bias.
      PackedGemm(input.data() + first * input.cols(), input.cols(), count,
                 dir.kernel_packed, projection[d].data() + first * width_of[d],
                 width_of[d]);
    } else {
      projection[d].middleRows(first, count).leftCols(width).noalias() =
          input.middleRows(first, count) * dir.kernel;
      projection[d].middleRows(first, count).leftCols(width).rowwise() +=
          dir.input_bias;
    }
  };
  // Concatenated sequences: each direction writes its outputs straight
  // into its columns of the merged rows, which saves copying them after
  // both finish (W3: 13 MB, on one thread while the other idles).
  const bool write_merged = layer.return_sequences &&
                            layer.merge_mode == MergeMode::kConcat &&
                            !keep_directions;
  if (write_merged) {
    result.merged.resize(total, layer.forward.units + layer.backward.units);
  }
  std::vector<uint8_t> started[2];
  DirectionBuffers buffers[2];
  for (int d = 0; d < 2; ++d) {
    const RnnDirection& dir = *directions[d];
    projection[d].resize(total, width_of[d]);
    DirectionBuffers& io = buffers[d];
    io.projection = projection[d].data();
    io.projection_stride = projection[d].cols();
    io.h = h[d]->data();
    io.c = c[d]->size() > 0 ? c[d]->data() : nullptr;
    if (write_merged) {
      io.output = result.merged.data() + (d == 0 ? 0 : layer.forward.units);
      io.output_stride = result.merged.cols();
    } else if (layer.return_sequences) {
      outputs[d]->resize(total, dir.units);
      io.output = outputs[d]->data();
      io.output_stride = dir.units;
    }
    if (keep != nullptr) {
      started[d].assign(batch, 0);
      io.keep = keep;
      io.started = started[d].data();
      io.masked_step_output = layer.masked_step_output;
    }
  }
  // Keras' Bidirectional flips the backward layer's outputs in time.
  auto recur = [&](int d, int range) {
    RunDirection(*directions[d], layout, rows[range], rows[range + 1],
                 /*reverse_output=*/d == 1, buffers[d]);
  };

  if (row_ranges == 1) {
    // One task per direction: its projection, then its recurrence.
    Run(pool, parallel, 2, [&](int d) {
      project(d, 0, total);
      recur(d, 0);
    });
  } else {
    // Every sequence range needs its rows of the projection, which are
    // spread over the packed buffer: project first, split by packed rows,
    // then recur, one task per direction and sequence range.
    const int parts = pool.num_threads();
    Run(pool, parallel, 2 * parts, [&](int task) {
      const int part = task / 2;
      const int64_t first = total * part / parts;
      project(task % 2, first, total * (part + 1) / parts - first);
    });
    Run(pool, parallel, 2 * row_ranges,
        [&](int task) { recur(task % 2, task / 2); });
  }

  if (!layer.return_sequences) {
    // Keras returns the last output: the final h; for a sequence whose every
    // step was masked, zeros in Keras, the (initial) state in TensorFlow.js.
    for (int d = 0; d < 2; ++d) {
      *outputs[d] = *h[d];
      for (int i = 0; i < static_cast<int>(started[d].size()); ++i) {
        if (!started[d][i] &&
            layer.masked_step_output == MaskedStepOutput::kZeros) {
          outputs[d]->row(i).setZero();
        }
      }
    }
  }

  const RowMatrix& y = result.forward;
  const RowMatrix& y_rev = result.backward;
  switch (layer.merge_mode) {
    case MergeMode::kConcat:
      if (write_merged) break;  // written by the directions
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
