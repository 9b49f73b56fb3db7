#include "core/eval/direction_runner.h"

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/eval/evaluator.h"
#include "core/kernels/packed_layout.h"
#include "core/model/model.h"
#include "gtest/gtest.h"
#include "tests/support/random_model.h"
#include "tests/support/reference_model.h"
#include "tests/support/test_util.h"

namespace biserve {
namespace {

using testing::kRandomMaskValue;
using testing::RandomValues;
using testing::RandomWeights;
using testing::ReferenceEvaluate;
using testing::TensorNear;

constexpr float kTolerance = 2e-5f;
constexpr int kInputDim = 5;
constexpr int kUnits = 6;
// Mixed lengths, with a tie and a sequence of one step.
const std::vector<int64_t> kLengths = {3, 7, 1, 5, 7, 2};

struct Cell {
  std::string name;
  CellType cell;
  std::optional<bool> reset_after;
};

// What a masked step outputs, or no Masking layer at all.
enum class Masking { kNone, kZeros, kState };

struct Case {
  Cell cell;
  Masking masking;
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  static const char* const kMasking[] = {"Unmasked", "MaskedZeros",
                                         "MaskedState"};
  return info.param.cell.name + kMasking[static_cast<int>(info.param.masking)];
}

RnnWeightsSpec RandomDirectionWeights(std::mt19937& rng, const Cell& cell) {
  const int64_t g = GateCount(cell.cell) * kUnits;
  RnnWeightsSpec w;
  w.kernel = RandomWeights(rng, {kInputDim, g});
  w.recurrent_kernel = RandomWeights(rng, {kUnits, g});
  w.bias = cell.reset_after.value_or(false) ? RandomWeights(rng, {2, g})
                                            : RandomWeights(rng, {g});
  return w;
}

// One Bidirectional layer of `cell` with merge mode none and
// return_sequences, so that its directions are the model's outputs; with a
// Masking layer in front unless Masking::kNone.
std::shared_ptr<const Model> OneLayerModel(std::mt19937& rng, const Case& c) {
  RnnLayerSpec layer;
  layer.name = "rnn";
  layer.cell = c.cell.cell;
  layer.units = kUnits;
  layer.reset_after = c.cell.reset_after;
  layer.return_sequences = true;
  layer.weights = RandomDirectionWeights(rng, c.cell);
  BidirectionalSpec bidi{
      .name = "bi",
      .layer = layer,
      .backward_weights = RandomDirectionWeights(rng, c.cell),
      .merge_mode = "none"};
  ModelSpec spec{.name = "m", .input_dim = kInputDim};
  if (c.masking != Masking::kNone) {
    spec.layers.push_back(MaskingSpec{"mask", kRandomMaskValue});
    bidi.masked_step_output = c.masking == Masking::kZeros
                                  ? MaskedStepOutput::kZeros
                                  : MaskedStepOutput::kState;
  }
  spec.layers.push_back(bidi);
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Create(spec);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// A ragged batch of kLengths with initial states; with a mask, about a
// third of the steps are masked (some sequences' every step).
struct Batch {
  std::vector<std::vector<float>> features;  // [length * input_dim] each
  std::vector<std::vector<std::vector<float>>> states;  // per layer state
  std::vector<SequenceInput> inputs;
};

Batch RandomBatch(std::mt19937& rng, const BidirectionalLayer& layer,
                  bool mask) {
  Batch b;
  for (size_t i = 0; i < kLengths.size(); ++i) {
    std::vector<float> x = RandomValues(rng, kLengths[i] * kInputDim);
    for (int64_t t = 0; mask && t < kLengths[i]; ++t) {
      // Sequence 2 (one step) is masked entirely.
      if (i == 2 || std::bernoulli_distribution(0.3)(rng)) {
        std::fill_n(x.begin() + t * kInputDim, kInputDim, kRandomMaskValue);
      }
    }
    b.features.push_back(std::move(x));
    auto& states = b.states.emplace_back();
    for (const StateSpec& state : layer.states) {
      states.push_back(RandomValues(rng, state.units, 0.5f));
    }
  }
  for (size_t i = 0; i < kLengths.size(); ++i) {
    SequenceInput in{.length = kLengths[i], .features = b.features[i]};
    for (const auto& s : b.states[i]) in.initial_state.push_back(s);
    b.inputs.push_back(std::move(in));
  }
  return b;
}

// What RunDirection left, per sequence in request order.
struct RunnerResult {
  std::vector<Tensor> outputs;  // [length, units]
  std::vector<Tensor> h, c;     // [units]; c for LSTM only
};

// Runs direction `which` of `layer` over `batch` with RunDirection alone,
// one call per row range [bounds[k], bounds[k + 1]) of the sorted batch.
RunnerResult RunRanges(const Model& model, Direction which, const Batch& batch,
                       const std::vector<int>& bounds, bool reverse_output) {
  const BidirectionalLayer& layer = model.bidirectional(0);
  const RnnDirection& d = layer.direction(which);
  const PackedLayout layout(kLengths);
  const int n = layout.batch_size();
  RowMatrix input = RowMatrix::Zero(layout.total_steps(), kInputDim);
  std::vector<uint8_t> keep(layout.total_steps(), 1);
  RowMatrix h(n, d.units);
  RowMatrix c = RowMatrix::Zero(n, d.units);
  const int h_index = layer.state_index(which, StateKind::kH);
  const int c_index = layer.state_index(which, StateKind::kC);
  for (int i = 0; i < n; ++i) {
    const SequenceInput& seq = batch.inputs[layout.request_index(i)];
    for (int64_t t = 0; t < layout.length(i); ++t) {
      const float* x = seq.features.data() + t * kInputDim;
      const bool masked = model.mask_value().has_value() &&
                          std::all_of(x, x + kInputDim, [](float v) {
                            return v == kRandomMaskValue;
                          });
      keep[layout.row(i, t)] = masked ? 0 : 1;
      if (!masked) {
        std::copy_n(x, kInputDim, &input(layout.row(i, t), 0));
      }
    }
    h.row(i) = ConstVectorMap(seq.initial_state[h_index].data(), d.units);
    if (c_index >= 0) {
      c.row(i) = ConstVectorMap(seq.initial_state[c_index].data(), d.units);
    }
  }
  // The input projection, plain: x * W + b.
  RowMatrix projection = input * d.kernel;
  projection.rowwise() += d.input_bias;
  RowMatrix output = RowMatrix::Zero(layout.total_steps(), d.units);
  std::vector<uint8_t> started(n, 0);
  DirectionBuffers io{.projection = projection.data(),
                      .projection_stride = projection.cols(),
                      .h = h.data(),
                      .c = c_index >= 0 ? c.data() : nullptr,
                      .output = output.data(),
                      .output_stride = d.units};
  if (model.masks_steps()) {
    io.keep = keep.data();
    io.started = started.data();
    io.masked_step_output = layer.masked_step_output;
  }
  for (size_t k = 0; k + 1 < bounds.size(); ++k) {
    RunDirection(d, layout, bounds[k], bounds[k + 1], reverse_output, io);
  }
  RunnerResult result;
  result.outputs.resize(n);
  result.h.resize(n);
  result.c.resize(n);
  for (int i = 0; i < n; ++i) {
    const int request = layout.request_index(i);
    Tensor& out = result.outputs[request];
    out.shape = {layout.length(i), d.units};
    for (int64_t t = 0; t < layout.length(i); ++t) {
      const float* row = &output(layout.row(i, t), 0);
      out.values.insert(out.values.end(), row, row + d.units);
    }
    result.h[request] = Tensor{{d.units}, {&h(i, 0), &h(i, 0) + d.units}};
    if (c_index >= 0) {
      result.c[request] = Tensor{{d.units}, {&c(i, 0), &c(i, 0) + d.units}};
    }
  }
  return result;
}

std::vector<Cell> AllCells() {
  return {{"SimpleRnn", CellType::kSimpleRnn, std::nullopt},
          {"Lstm", CellType::kLstm, std::nullopt},
          {"GruResetAfter", CellType::kGru, true},
          {"GruResetBefore", CellType::kGru, false}};
}

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (const Cell& cell : AllCells()) {
    for (Masking m : {Masking::kNone, Masking::kZeros, Masking::kState}) {
      cases.push_back({cell, m});
    }
  }
  return cases;
}

class DirectionRunnerTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    model_ = OneLayerModel(rng_, GetParam());
    ASSERT_NE(model_, nullptr);
    batch_ = RandomBatch(rng_, model_->bidirectional(0),
                         GetParam().masking != Masking::kNone);
  }

  // Every sequence's outputs and final states match the plain reference
  // (Keras' equations, one sequence alone).
  void ExpectMatchesReference(Direction which, const RunnerResult& actual) {
    const BidirectionalLayer& layer = model_->bidirectional(0);
    EvalOptions options{.directions = true, .states = true};
    for (size_t i = 0; i < batch_.inputs.size(); ++i) {
      SCOPED_TRACE(::testing::Message() << "sequence " << i);
      const SequenceResult expected =
          ReferenceEvaluate(*model_, batch_.inputs[i], options);
      EXPECT_TRUE(TensorNear(
          actual.outputs[i],
          which == Direction::kForward ? expected.forward : expected.backward,
          kTolerance, true));
      const int h = layer.state_index(which, StateKind::kH);
      EXPECT_TRUE(
          TensorNear(actual.h[i], expected.states[0][h], kTolerance, true));
      const int c = layer.state_index(which, StateKind::kC);
      if (c >= 0) {
        EXPECT_TRUE(
            TensorNear(actual.c[i], expected.states[0][c], kTolerance, true));
      }
    }
  }

  std::mt19937 rng_{2024};
  std::shared_ptr<const Model> model_;
  Batch batch_;
};

TEST_P(DirectionRunnerTest, ForwardDirectionMatchesTheReference) {
  const std::vector<int> all = {0, static_cast<int>(kLengths.size())};
  ExpectMatchesReference(Direction::kForward,
                         RunRanges(*model_, Direction::kForward, batch_, all,
                                   /*reverse_output=*/false));
}

// go_backwards reads each sequence from its own last step; reverse_output
// writes the outputs back in input time, as Keras' Bidirectional does.
TEST_P(DirectionRunnerTest, BackwardDirectionMatchesTheReference) {
  const std::vector<int> all = {0, static_cast<int>(kLengths.size())};
  ExpectMatchesReference(Direction::kBackward,
                         RunRanges(*model_, Direction::kBackward, batch_, all,
                                   /*reverse_output=*/true));
}

// Without reverse_output a go_backwards direction writes in processing
// order: the same rows, mirrored in each sequence's time.
TEST_P(DirectionRunnerTest, BackwardWithoutReverseOutputIsMirroredInTime) {
  const std::vector<int> all = {0, static_cast<int>(kLengths.size())};
  const RunnerResult aligned =
      RunRanges(*model_, Direction::kBackward, batch_, all, true);
  const RunnerResult processing =
      RunRanges(*model_, Direction::kBackward, batch_, all, false);
  for (size_t i = 0; i < kLengths.size(); ++i) {
    const int64_t n = kLengths[i];
    for (int64_t t = 0; t < n; ++t) {
      for (int j = 0; j < kUnits; ++j) {
        EXPECT_EQ(processing.outputs[i].values[t * kUnits + j],
                  aligned.outputs[i].values[(n - 1 - t) * kUnits + j])
            << "sequence " << i << " step " << t;
      }
    }
    EXPECT_EQ(processing.h[i].values, aligned.h[i].values);
  }
}

// Sequences never interact, so any split of the sorted rows into ranges
// (an empty one included) gives what one range gives: the same arithmetic
// in the same order, equal up to GEMM blocking (Eigen's GEMM sums in an
// order that depends on the row count).
TEST_P(DirectionRunnerTest, RowRangesGiveWhatOneRangeGives) {
  constexpr float kBlocking = 1e-6f;
  const int n = static_cast<int>(kLengths.size());
  for (const Direction which : {Direction::kForward, Direction::kBackward}) {
    const bool reverse = which == Direction::kBackward;
    const RunnerResult whole =
        RunRanges(*model_, which, batch_, {0, n}, reverse);
    for (const std::vector<int>& bounds : std::vector<std::vector<int>>{
             {0, 1, n}, {0, 2, 2, 5, n}, {0, 1, 2, 3, 4, 5, n}}) {
      const RunnerResult split =
          RunRanges(*model_, which, batch_, bounds, reverse);
      for (int i = 0; i < n; ++i) {
        SCOPED_TRACE(::testing::Message() << "sequence " << i);
        EXPECT_TRUE(
            TensorNear(split.outputs[i], whole.outputs[i], kBlocking, true));
        EXPECT_TRUE(TensorNear(split.h[i], whole.h[i], kBlocking, true));
        EXPECT_TRUE(TensorNear(split.c[i], whole.c[i], kBlocking, true));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryCell, DirectionRunnerTest,
                         ::testing::ValuesIn(AllCases()), CaseName);

}  // namespace
}  // namespace biserve
