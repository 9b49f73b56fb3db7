#include "core/eval/bidirectional.h"

#include <algorithm>
#include <array>
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

// What one direction works on. Forward is index 0, backward 1.
struct DirectionWork {
  const RnnDirection* weights = nullptr;
  // x * W + input_bias of every packed row, [total_steps, width]: width is
  // G * units rounded up to PackedGemm's whole panels.
  RowMatrix projection;
  std::vector<uint8_t> started;  // [batch] with a mask; empty otherwise
  DirectionBuffers io;           // into projection, started and the result
};

// The states start from the request's initial_state (layer.states' order)
// or zeros.
std::vector<RowMatrix> StartStates(const BidirectionalLayer& layer, int batch,
                                   absl::Span<const RowMatrix> initial_state) {
  std::vector<RowMatrix> states;
  states.reserve(layer.states.size());
  for (size_t i = 0; i < layer.states.size(); ++i) {
    states.push_back(initial_state.empty()
                         ? RowMatrix::Zero(batch, layer.states[i].units)
                         : initial_state[i]);
  }
  return states;
}

// Sets up `work` for direction `which`: its projection buffer, its state
// rows in result.states, and where its outputs go (result.merged's columns
// when `write_merged`, else its own matrix when the layer returns
// sequences).
void PrepareDirection(const BidirectionalLayer& layer, Direction which,
                      const PackedLayout& layout, const uint8_t* keep,
                      bool write_merged, BidirectionalResult& result,
                      DirectionWork& work) {
  const RnnDirection& dir = layer.direction(which);
  const bool forward = which == Direction::kForward;
  work.weights = &dir;
  work.projection.resize(layout.total_steps(), dir.kernel_packed.padded_cols());
  DirectionBuffers& io = work.io;
  io.projection = work.projection.data();
  io.projection_stride = work.projection.cols();
  io.h = result.states[layer.state_index(which, StateKind::kH)].data();
  const int c = layer.state_index(which, StateKind::kC);
  io.c = c >= 0 ? result.states[c].data() : nullptr;
  if (write_merged) {
    io.output = result.merged.data() + (forward ? 0 : layer.forward.units);
    io.output_stride = result.merged.cols();
  } else if (layer.return_sequences) {
    RowMatrix& output = forward ? result.forward : result.backward;
    output.resize(layout.total_steps(), dir.units);
    io.output = output.data();
    io.output_stride = dir.units;
  }
  if (keep != nullptr) {
    work.started.assign(layout.batch_size(), 0);
    io.keep = keep;
    io.started = work.started.data();
    io.masked_step_output = layer.masked_step_output;
  }
}

// Projects packed rows [first, first + count) of `input` ([total_steps,
// input_size]) into work.projection.
void Project(const RowMatrix& input, int64_t first, int64_t count,
             DirectionWork& work) {
  if (count <= 0) return;
  RowMatrix& projection = work.projection;
  // The packed kernel carries the input bias.
  PackedGemm(input.data() + first * input.cols(), input.cols(), count,
             work.weights->kernel_packed,
             projection.data() + first * projection.cols(), projection.cols());
}

// Both directions' input projections and recurrences, on the pool when
// the layer's work pays for it.
//
// Each direction's input projection is one GEMM over every step of every
// sequence, [total_steps, input] x [input, G * units]. Per direction rather
// than one GEMM for both: it keeps each direction's rows contiguous and,
// with one row range, lets a direction's task project and recur with no
// fork-join between (measured: the fused GEMM as a separate parallel phase
// cost 21% on W1b and 5% on W3 at two threads).
void RunDirections(const PackedLayout& layout, const RowMatrix& input,
                   std::array<DirectionWork, 2>& work, ThreadPool& pool) {
  const int64_t total = layout.total_steps();
  double flops = 0;  // this layer's multiply-adds x 2, for the cost model
  for (const DirectionWork& w : work) {
    const RnnDirection& d = *w.weights;
    flops += 2.0 * total * d.gates() * d.units * (d.input_size + d.units);
  }
  const bool parallel = pool.WorthParallel(flops);
  // Two directions fill two threads; more threads split the sequences too.
  const int ranges = parallel ? std::max(1, pool.num_threads() / 2) : 1;
  const std::vector<int> rows = layout.SplitSequences(ranges);
  const int row_ranges = static_cast<int>(rows.size()) - 1;
  // Keras' Bidirectional flips the backward layer's outputs in time.
  auto recur = [&](int d, int range) {
    RunDirection(*work[d].weights, layout, rows[range], rows[range + 1],
                 /*reverse_output=*/d == 1, work[d].io);
  };
  if (row_ranges == 1) {
    // One task per direction: its projection, then its recurrence.
    Run(pool, parallel, 2, [&](int d) {
      Project(input, 0, total, work[d]);
      recur(d, 0);
    });
    return;
  }
  // Every sequence range needs its rows of the projection, which are spread
  // over the packed buffer: project first, split by packed rows, then
  // recur, one task per direction and sequence range.
  const int parts = pool.num_threads();
  Run(pool, parallel, 2 * parts, [&](int task) {
    const int part = task / 2;
    const int64_t first = total * part / parts;
    Project(input, first, total * (part + 1) / parts - first, work[task % 2]);
  });
  Run(pool, parallel, 2 * row_ranges,
      [&](int task) { recur(task % 2, task / 2); });
}

// Keras returns the last output without return_sequences: the final h; for
// a sequence whose every step was masked, zeros in Keras, the (initial)
// state in TensorFlow.js.
void LastOutputs(const BidirectionalLayer& layer,
                 const std::array<DirectionWork, 2>& work,
                 BidirectionalResult& result) {
  for (const Direction which : {Direction::kForward, Direction::kBackward}) {
    const int d = which == Direction::kForward ? 0 : 1;
    RowMatrix& output = d == 0 ? result.forward : result.backward;
    output = result.states[layer.state_index(which, StateKind::kH)];
    const std::vector<uint8_t>& started = work[d].started;
    for (int i = 0; i < static_cast<int>(started.size()); ++i) {
      if (!started[i] && layer.masked_step_output == MaskedStepOutput::kZeros) {
        output.row(i).setZero();
      }
    }
  }
}

// result.merged from the directions' outputs, by the layer's merge mode
// (concat: unless the directions wrote it already).
void Merge(MergeMode mode, bool written, BidirectionalResult& result) {
  const RowMatrix& y = result.forward;
  const RowMatrix& y_rev = result.backward;
  switch (mode) {
    case MergeMode::kConcat:
      if (written) break;
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
}

}  // namespace

BidirectionalResult EvaluateBidirectional(
    const BidirectionalLayer& layer, const PackedLayout& layout,
    const RowMatrix& input, absl::Span<const RowMatrix> initial_state,
    const uint8_t* keep, bool keep_directions, ThreadPool& pool) {
  BidirectionalResult result;
  result.states = StartStates(layer, layout.batch_size(), initial_state);
  // Concatenated sequences: each direction writes its outputs straight
  // into its columns of the merged rows, which saves copying them after
  // both finish (W3: 13 MB, on one thread while the other idles).
  const bool write_merged = layer.return_sequences &&
                            layer.merge_mode == MergeMode::kConcat &&
                            !keep_directions;
  if (write_merged) {
    result.merged.resize(layout.total_steps(),
                         layer.forward.units + layer.backward.units);
  }
  std::array<DirectionWork, 2> work;
  PrepareDirection(layer, Direction::kForward, layout, keep, write_merged,
                   result, work[0]);
  PrepareDirection(layer, Direction::kBackward, layout, keep, write_merged,
                   result, work[1]);
  RunDirections(layout, input, work, pool);
  if (!layer.return_sequences) LastOutputs(layer, work, result);
  Merge(layer.merge_mode, write_merged, result);
  return result;
}

}  // namespace biserve
