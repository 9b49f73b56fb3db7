#include "core/eval/evaluator.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "core/eval/bidirectional.h"
#include "core/eval/global_pooling.h"
#include "core/kernels/packed_layout.h"

namespace biserve {
namespace {

// Copies the rows of sorted sequence `i` out of a packed matrix: [length, D]
// when `sequences`, else row i as [D].
Tensor Unpack(const RowMatrix& packed, const PackedLayout& layout, int i,
              bool sequences) {
  Tensor tensor;
  const int64_t width = packed.cols();
  if (!sequences) {
    tensor.shape = {width};
    tensor.values.assign(&packed(i, 0), &packed(i, 0) + width);
    return tensor;
  }
  const int64_t length = layout.length(i);
  tensor.shape = {length, width};
  // Appended row by row rather than resized and overwritten: resize() would
  // zero every value first, a second pass over megabytes.
  tensor.values.reserve(length * width);
  for (int64_t t = 0; t < length; ++t) {
    const float* row = &packed(layout.row(i, t), 0);
    tensor.values.insert(tensor.values.end(), row, row + width);
  }
  return tensor;
}

// Runs fn(first, end) over contiguous ranges of sorted sequences that
// together cover the batch: one range per pool thread when the batch moves
// enough values to pay for the hand-off, else one range on this thread.
// Packing a batch's input and unpacking its outputs are copies of megabytes
// (W3: 6.5 MB in, 13 MB out); on one thread they idled the other threads
// for a tenth of the batch's time.
void ForSequenceRanges(ThreadPool& pool, const PackedLayout& layout,
                       int64_t values, absl::FunctionRef<void(int, int)> fn) {
  // A copied float costs about as long as 25 FLOPs of a GEMM (memory-bound
  // at ~0.15 ns against ~0.006 ns per FLOP).
  constexpr double kFlopsPerCopiedValue = 25;
  if (!pool.WorthParallel(kFlopsPerCopiedValue * static_cast<double>(values))) {
    fn(0, layout.batch_size());
    return;
  }
  const std::vector<int> bounds = layout.SplitSequences(pool.num_threads());
  pool.ParallelFor(static_cast<int>(bounds.size()) - 1,
                   [&](int part) { fn(bounds[part], bounds[part + 1]); });
}

Tensor StateRow(const RowMatrix& state, int i) {
  return Tensor{{state.cols()},
                std::vector<float>(&state(i, 0), &state(i, 0) + state.cols())};
}

// The first layer's input, packed: features copied, or token ids looked up.
RowMatrix PackInput(const Model& model, const PackedLayout& layout,
                    absl::Span<const SequenceInput> batch, ThreadPool& pool) {
  const RowMatrix* table =
      model.embedding() ? &model.embedding()->embeddings : nullptr;
  const int64_t width = table ? table->cols() : model.input_dim();
  RowMatrix packed(layout.total_steps(), width);
  ForSequenceRanges(
      pool, layout, layout.total_steps() * width, [&](int first, int end) {
        for (int i = first; i < end; ++i) {
          const SequenceInput& seq = batch[layout.request_index(i)];
          for (int64_t t = 0; t < layout.length(i); ++t) {
            const float* source = table ? &(*table)(seq.token_ids[t], 0)
                                        : seq.features.data() + t * width;
            std::copy_n(source, width, &packed(layout.row(i, t), 0));
          }
        }
      });
  return packed;
}

// Keras' mask over the packed rows: 0 for a step the recurrent layers skip
// (Masking: every feature equals mask_value; Embedding mask_zero: token id
// 0). Masking also zeroes those steps' features, as Keras' Masking does.
std::vector<uint8_t> PackMask(const Model& model, const PackedLayout& layout,
                              absl::Span<const SequenceInput> batch,
                              RowMatrix& packed) {
  std::vector<uint8_t> keep(layout.total_steps(), 1);
  for (int i = 0; i < layout.batch_size(); ++i) {
    const SequenceInput& seq = batch[layout.request_index(i)];
    for (int64_t t = 0; t < layout.length(i); ++t) {
      const int64_t row = layout.row(i, t);
      if (model.mask_value().has_value()) {
        const int64_t n = model.input_dim();
        const float* x = seq.features.data() + t * n;
        bool masked = true;
        for (int64_t j = 0; j < n && masked; ++j) {
          masked = x[j] == *model.mask_value();
        }
        if (masked) {
          keep[row] = 0;
          packed.row(row).setZero();
        }
      } else if (seq.token_ids[t] == 0) {
        keep[row] = 0;
      }
    }
  }
  return keep;
}

// The initial states of the first Bidirectional layer as [batch, units]
// matrices in sorted order, one per layer.states entry; empty when no
// sequence gives any.
std::vector<RowMatrix> PackInitialState(const BidirectionalLayer& layer,
                                        const PackedLayout& layout,
                                        absl::Span<const SequenceInput> batch) {
  bool any = false;
  for (const SequenceInput& seq : batch) any |= !seq.initial_state.empty();
  if (!any) return {};
  std::vector<RowMatrix> states;
  for (size_t s = 0; s < layer.states.size(); ++s) {
    const int units = layer.states[s].units;
    RowMatrix state = RowMatrix::Zero(layout.batch_size(), units);
    for (int i = 0; i < layout.batch_size(); ++i) {
      const SequenceInput& seq = batch[layout.request_index(i)];
      if (seq.initial_state.empty()) continue;
      state.row(i) = ConstVectorMap(seq.initial_state[s].data(), units);
    }
    states.push_back(std::move(state));
  }
  return states;
}

// The first error of a sequence of `batch` that is not marked validated
// for `model`, as "sequences[i]: ...".
absl::Status ValidateBatch(const Model& model,
                           absl::Span<const SequenceInput> batch,
                           bool allow_non_finite) {
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].validated.Covers(model, allow_non_finite)) continue;
    absl::Status status = ValidateSequence(model, batch[i], allow_non_finite);
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("sequences[", i,
                                                      "]: ", status.message()));
    }
  }
  return absl::OkStatus();
}

// Counted from the layout that drives every recurrence step's GEMM.
EvalStats StatsOf(const PackedLayout& layout) {
  EvalStats stats{.sequences = layout.batch_size(),
                  .real_steps = layout.total_steps(),
                  .padded_steps = layout.batch_size() * layout.max_length()};
  for (int64_t t = 0; t < layout.max_length(); ++t) {
    stats.computed_steps += layout.alive(t);
  }
  return stats;
}

// What the layer stack leaves for the results.
struct StackOutput {
  RowMatrix x;            // the last layer's output rows
  bool sequences = true;  // whether x holds packed steps or one row per seq
  // The last Bidirectional layer's directions, when asked for.
  RowMatrix forward, backward;
  // Per Bidirectional layer, its final states (BidirectionalResult::states)
  // when asked for.
  std::vector<std::vector<RowMatrix>> states;
};

// Runs the batch through every layer of `model`. `directions`: keep the
// last Bidirectional layer's directions apart; `states`: keep every
// Bidirectional layer's final states.
StackOutput RunLayers(const Model& model, const PackedLayout& layout,
                      absl::Span<const SequenceInput> batch, bool directions,
                      bool states, ThreadPool& pool) {
  StackOutput out;
  out.x = PackInput(model, layout, batch, pool);
  // Keras propagates the mask through every layer that keeps the time axis,
  // so every Bidirectional layer skips the same steps.
  const std::vector<uint8_t> keep = model.masks_steps()
                                        ? PackMask(model, layout, batch, out.x)
                                        : std::vector<uint8_t>();
  for (int index = 0; index < static_cast<int>(model.layers().size());
       ++index) {
    const StackLayer& layer = model.layers()[index];
    if (const auto* pool = std::get_if<GlobalPoolingLayer>(&layer)) {
      out.x = GlobalPool(*pool, layout, out.x,
                         keep.empty() ? nullptr : keep.data());
      out.sequences = false;
      continue;
    }
    // Dense, Activation and normalization layers work on every row alone
    // and keep the mask, as Keras' do (ApplyRowLayer, core/model/model.h:
    // the same code computes a signature's padding step).
    if (ApplyRowLayer(layer, out.x)) continue;
    const auto& bidi = std::get<BidirectionalLayer>(layer);
    const bool last = index == model.last_bidirectional();
    const std::vector<RowMatrix> initial_state =
        index == model.first_bidirectional()
            ? PackInitialState(bidi, layout, batch)
            : std::vector<RowMatrix>();
    BidirectionalResult result =
        EvaluateBidirectional(bidi, layout, out.x, initial_state,
                              keep.empty() ? nullptr : keep.data(),
                              /*keep_directions=*/directions && last, pool);
    out.x = std::move(result.merged);
    out.sequences = bidi.return_sequences;
    if (last) {
      out.forward = std::move(result.forward);
      out.backward = std::move(result.backward);
    }
    if (states) out.states.push_back(std::move(result.states));
  }
  return out;
}

// Copies each sequence's rows of `out` into its result: every sequence's
// result holds its own copies, so the copies are spread over the pool.
void UnpackResults(const Model& model, const PackedLayout& layout,
                   const StackOutput& out, const EvalOptions& options,
                   bool directions, ThreadPool& pool,
                   std::vector<SequenceResult>& results) {
  const bool last_sequences =
      model.bidirectional(model.last_bidirectional()).return_sequences;
  int64_t values = options.output ? out.x.size() : 0;
  if (directions) values += out.forward.size() + out.backward.size();
  ForSequenceRanges(pool, layout, values, [&](int first, int end) {
    for (int i = first; i < end; ++i) {
      SequenceResult& result = results[layout.request_index(i)];
      if (options.output && model.output_size() > 0) {
        result.output = Unpack(out.x, layout, i, out.sequences);
      }
      if (directions) {
        result.forward = Unpack(out.forward, layout, i, last_sequences);
        result.backward = Unpack(out.backward, layout, i, last_sequences);
      }
      for (const std::vector<RowMatrix>& layer : out.states) {
        std::vector<Tensor>& states = result.states.emplace_back();
        for (const RowMatrix& state : layer) {
          states.push_back(StateRow(state, i));
        }
      }
    }
  });
}

}  // namespace

absl::StatusOr<std::vector<SequenceResult>> Evaluate(
    const Model& model, absl::Span<const SequenceInput> batch,
    const EvalOptions& options, ThreadPool& pool, EvalStats* stats) {
  if (absl::Status s = ValidateBatch(model, batch, options.allow_non_finite);
      !s.ok()) {
    return s;
  }
  std::vector<SequenceResult> results(batch.size());
  if (batch.empty()) return results;
  std::vector<int64_t> lengths;
  lengths.reserve(batch.size());
  for (const SequenceInput& seq : batch) lengths.push_back(seq.length);
  const PackedLayout layout(lengths);
  if (stats != nullptr) *stats = StatsOf(layout);
  // Whether the caller gets the last Bidirectional layer's directions apart.
  const bool directions =
      options.directions ||
      model.bidirectional(model.last_bidirectional()).merge_mode ==
          MergeMode::kNone;
  const StackOutput out =
      RunLayers(model, layout, batch, directions, options.states, pool);
  UnpackResults(model, layout, out, options, directions, pool, results);
  return results;
}

absl::Status WarmUp(const Model& model, ThreadPool& pool) {
  constexpr int64_t kSteps = 4;
  std::vector<float> features(kSteps * model.input_dim(), 0.0f);
  std::vector<int32_t> token_ids(kSteps, 0);
  SequenceInput input{.length = kSteps};
  if (model.takes_token_ids()) {
    input.token_ids = token_ids;
  } else {
    input.features = features;
  }
  return Evaluate(model, absl::MakeConstSpan(&input, 1), EvalOptions(), pool)
      .status();
}

}  // namespace biserve
