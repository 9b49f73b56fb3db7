#include "core/eval/evaluator.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "core/eval/bidirectional.h"
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

// Position of the first value that is not finite, or -1. Blocks are checked
// without branching first (a loop the compiler vectorises), since a batch's
// features run to megabytes; only a block with a bad value is searched.
int64_t FirstNonFinite(absl::Span<const float> values) {
  constexpr size_t kBlock = 1024;
  // NaN and +-inf are the floats whose exponent bits are all ones; tested
  // on the bits as integers, which the compiler vectorises whatever its
  // floating-point flags.
  constexpr uint32_t kExponent = 0x7f800000;
  // A raw pointer: absl::Span's checked operator[] kept the loop scalar.
  const float* data = values.data();
  for (size_t start = 0; start < values.size(); start += kBlock) {
    const size_t end = std::min(values.size(), start + kBlock);
    uint32_t bad = 0;
    for (size_t v = start; v < end; ++v) {
      const uint32_t bits = std::bit_cast<uint32_t>(data[v]);
      bad |= (bits & kExponent) == kExponent ? 1u : 0u;
    }
    if (bad == 0) continue;
    for (size_t v = start; v < end; ++v) {
      if (!std::isfinite(values[v])) return static_cast<int64_t>(v);
    }
  }
  return -1;
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
// matrices in sorted order; empty when no sequence gives any.
std::vector<RowMatrix> PackInitialState(const BidirectionalLayer& layer,
                                        const PackedLayout& layout,
                                        absl::Span<const SequenceInput> batch) {
  bool any = false;
  for (const SequenceInput& seq : batch) any |= !seq.initial_state.empty();
  if (!any) return {};
  std::vector<int> units;
  for (const RnnDirection* d : {&layer.forward, &layer.backward}) {
    for (int s = 0; s < d->state_count(); ++s) units.push_back(d->units);
  }
  std::vector<RowMatrix> states;
  for (size_t s = 0; s < units.size(); ++s) {
    RowMatrix state = RowMatrix::Zero(layout.batch_size(), units[s]);
    for (int i = 0; i < layout.batch_size(); ++i) {
      const SequenceInput& seq = batch[layout.request_index(i)];
      if (seq.initial_state.empty()) continue;
      state.row(i) = ConstVectorMap(seq.initial_state[s].data(), units[s]);
    }
    states.push_back(std::move(state));
  }
  return states;
}

void ApplyDense(const DenseLayer& dense, RowMatrix& x) {
  RowMatrix y = x * dense.kernel;
  y.rowwise() += dense.bias;
  if (dense.activation != Activation::kLinear) {
    for (int64_t r = 0; r < y.rows(); ++r) {
      Activate(dense.activation, absl::Span<float>(&y(r, 0), y.cols()));
    }
  }
  x = std::move(y);
}

}  // namespace

absl::Status ValidateSequence(const Model& model, const SequenceInput& input,
                              bool allow_non_finite) {
  if (input.length < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "length must be at least 1 time step; was ", input.length));
  }
  if (model.takes_token_ids()) {
    if (!input.features.empty()) {
      return absl::InvalidArgumentError(
          "features given, but this model takes token ids (its first layer "
          "is an Embedding)");
    }
    if (static_cast<int64_t>(input.token_ids.size()) != input.length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token_ids: expected ", input.length,
          " ids (one per time step), got ", input.token_ids.size()));
    }
    const int64_t vocabulary = model.embedding()->embeddings.rows();
    for (int64_t t = 0; t < input.length; ++t) {
      if (input.token_ids[t] < 0 || input.token_ids[t] >= vocabulary) {
        return absl::InvalidArgumentError(
            absl::StrCat("token_ids[", t, "] = ", input.token_ids[t],
                         " is outside the vocabulary [0, ", vocabulary, ")"));
      }
    }
  } else {
    if (!input.token_ids.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ids given, but this model takes ",
                       model.input_dim(), " float features per time step"));
    }
    const int64_t expected = input.length * model.input_dim();
    if (static_cast<int64_t>(input.features.size()) != expected) {
      return absl::InvalidArgumentError(
          absl::StrCat("features: expected shape [length, input_dim] = [",
                       input.length, ", ", model.input_dim(), "] (", expected,
                       " values), got ", input.features.size(), " values"));
    }
    const int64_t v = allow_non_finite ? -1 : FirstNonFinite(input.features);
    if (v >= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "features[", v / model.input_dim(), "][", v % model.input_dim(),
          "] is ", input.features[v], "; inputs must be finite"));
    }
  }
  if (!input.initial_state.empty()) {
    const BidirectionalLayer& layer =
        model.bidirectional(model.first_bidirectional());
    std::vector<std::pair<std::string, int>> expected;
    for (const auto& [prefix, d] : {std::pair{"forward", &layer.forward},
                                    std::pair{"backward", &layer.backward}}) {
      expected.emplace_back(absl::StrCat(prefix, " h"), d->units);
      if (d->cell == CellType::kLstm) {
        expected.emplace_back(absl::StrCat(prefix, " c"), d->units);
      }
    }
    if (input.initial_state.size() != expected.size()) {
      std::string names;
      for (const auto& [name, units] : expected) {
        absl::StrAppend(&names, names.empty() ? "" : ", ", name, " [", units,
                        "]");
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "initial_state: expected ", expected.size(), " tensors (", names,
          ": the forward layer's states, then the backward layer's), got ",
          input.initial_state.size()));
    }
    for (size_t s = 0; s < expected.size(); ++s) {
      const auto& state = input.initial_state[s];
      if (static_cast<int>(state.size()) != expected[s].second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "initial_state[", s, "] (", expected[s].first, "): expected [",
            expected[s].second, "] values, got ", state.size()));
      }
      for (size_t v = 0; !allow_non_finite && v < state.size(); ++v) {
        if (!std::isfinite(state[v])) {
          return absl::InvalidArgumentError(
              absl::StrCat("initial_state[", s, "][", v, "] is ", state[v],
                           "; states must be finite"));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SequenceResult>> Evaluate(
    const Model& model, absl::Span<const SequenceInput> batch,
    const EvalOptions& options, ThreadPool& pool, EvalStats* stats) {
  std::vector<int64_t> lengths;
  lengths.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    absl::Status status =
        ValidateSequence(model, batch[i], options.allow_non_finite);
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("sequences[", i,
                                                      "]: ", status.message()));
    }
    lengths.push_back(batch[i].length);
  }
  std::vector<SequenceResult> results(batch.size());
  if (batch.empty()) return results;

  const PackedLayout layout(lengths);
  if (stats != nullptr) {
    // Counted from the layout that drives every recurrence step's GEMM.
    *stats =
        EvalStats{.sequences = layout.batch_size(),
                  .real_steps = layout.total_steps(),
                  .padded_steps = layout.batch_size() * layout.max_length()};
    for (int64_t t = 0; t < layout.max_length(); ++t) {
      stats->computed_steps += layout.alive(t);
    }
  }
  RowMatrix x = PackInput(model, layout, batch, pool);  // the layer input
  // Keras propagates the mask through every layer that keeps the time axis,
  // so every Bidirectional layer skips the same steps.
  const std::vector<uint8_t> keep = model.masks_steps()
                                        ? PackMask(model, layout, batch, x)
                                        : std::vector<uint8_t>();
  bool sequences = true;  // whether x holds packed steps or one row per seq
  const BidirectionalLayer& last_layer =
      model.bidirectional(model.last_bidirectional());
  // Whether the caller gets the last Bidirectional layer's directions apart.
  const bool directions =
      options.directions || last_layer.merge_mode == MergeMode::kNone;
  std::vector<BidirectionalResult> kept_states;  // per Bidirectional layer
  BidirectionalResult last;  // the last Bidirectional layer's directions

  for (int index = 0; index < static_cast<int>(model.layers().size());
       ++index) {
    const StackLayer& layer = model.layers()[index];
    if (const auto* dense = std::get_if<DenseLayer>(&layer)) {
      ApplyDense(*dense, x);
      continue;
    }
    const auto& bidi = std::get<BidirectionalLayer>(layer);
    const std::vector<RowMatrix> initial_state =
        index == model.first_bidirectional()
            ? PackInitialState(bidi, layout, batch)
            : std::vector<RowMatrix>();
    BidirectionalResult result = EvaluateBidirectional(
        bidi, layout, x, initial_state, keep.empty() ? nullptr : keep.data(),
        /*keep_directions=*/directions && index == model.last_bidirectional(),
        pool);
    x = std::move(result.merged);
    sequences = bidi.return_sequences;
    if (index == model.last_bidirectional()) {
      last.forward = std::move(result.forward);
      last.backward = std::move(result.backward);
    } else {
      result.forward.resize(0, 0);  // not needed any more
      result.backward.resize(0, 0);
    }
    if (options.states) kept_states.push_back(std::move(result));
  }

  // Every sequence's result holds its own copies: spread over the pool.
  int64_t values = options.output ? x.size() : 0;
  if (directions) values += last.forward.size() + last.backward.size();
  ForSequenceRanges(pool, layout, values, [&](int first, int end) {
    for (int i = first; i < end; ++i) {
      SequenceResult& out = results[layout.request_index(i)];
      if (options.output && model.output_size() > 0) {
        out.output = Unpack(x, layout, i, sequences);
      }
      if (directions) {
        out.forward =
            Unpack(last.forward, layout, i, last_layer.return_sequences);
        out.backward =
            Unpack(last.backward, layout, i, last_layer.return_sequences);
      }
      for (const BidirectionalResult& layer : kept_states) {
        std::vector<Tensor>& states = out.states.emplace_back();
        states.push_back(StateRow(layer.forward_h, i));
        if (layer.forward_c.size() > 0) {
          states.push_back(StateRow(layer.forward_c, i));
        }
        states.push_back(StateRow(layer.backward_h, i));
        if (layer.backward_c.size() > 0) {
          states.push_back(StateRow(layer.backward_c, i));
        }
      }
    }
  });
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
