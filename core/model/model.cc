#include "core/model/model.h"

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/kernels/normalization.h"

namespace biserve {
namespace {

// Every validation error starts with where it was found, e.g.
// "layers[1] 'bidirectional' forward layer 'lstm': ".
absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

std::string LayerLabel(int index, const std::string& name) {
  std::string label = absl::StrCat("layers[", index, "]");
  if (!name.empty()) absl::StrAppend(&label, " '", name, "'");
  return label;
}

// Checks that `tensor` has exactly `expected` shape (described in words by
// `meaning`, e.g. "[input_size, 4 * units]"), the matching number of values,
// and only finite values; copies it into a matrix of that shape.
absl::StatusOr<RowMatrix> ToMatrix(const Tensor& tensor,
                                   const std::vector<int64_t>& expected,
                                   absl::string_view where,
                                   absl::string_view field,
                                   absl::string_view meaning) {
  if (tensor.shape.empty() && tensor.values.empty()) {
    return Invalid(where,
                   absl::StrCat(field, " is missing; expected shape ",
                                ShapeString(expected), " (", meaning, ")"));
  }
  if (tensor.shape != expected) {
    return Invalid(where, absl::StrCat(field, ": expected shape ",
                                       ShapeString(expected), " (", meaning,
                                       "), got ", ShapeString(tensor.shape)));
  }
  const int64_t count = NumElements(expected);
  if (static_cast<int64_t>(tensor.values.size()) != count) {
    return Invalid(
        where, absl::StrCat(field, ": shape ", ShapeString(expected), " needs ",
                            count, " values, got ", tensor.values.size()));
  }
  for (size_t i = 0; i < tensor.values.size(); ++i) {
    if (!std::isfinite(tensor.values[i])) {
      return Invalid(
          where, absl::StrCat(field, ": value ", i, " is ", tensor.values[i],
                              "; weights must be finite"));
    }
  }
  const int64_t rows = expected.size() == 2 ? expected[0] : 1;
  return RowMatrix(ConstMatrixMap(tensor.values.data(), rows, count / rows));
}

absl::Status ExpectAbsent(const Tensor& tensor, absl::string_view where,
                          absl::string_view field, absl::string_view why) {
  if (tensor.empty()) return absl::OkStatus();
  return Invalid(where, absl::StrCat(field, " is present (shape ",
                                     ShapeString(tensor.shape),
                                     ") but must be absent: ", why));
}

absl::StatusOr<Activation> ActivationField(
    const std::optional<std::string>& name, Activation default_activation,
    absl::string_view where, absl::string_view field) {
  if (!name.has_value()) return default_activation;
  absl::StatusOr<Activation> activation = ParseActivation(*name);
  if (!activation.ok()) {
    return Invalid(where,
                   absl::StrCat(field, ": ", activation.status().message()));
  }
  return *activation;
}

absl::StatusOr<MergeMode> ParseMergeMode(const std::string& name,
                                         absl::string_view where) {
  if (name.empty() || name == "concat") return MergeMode::kConcat;
  if (name == "sum") return MergeMode::kSum;
  if (name == "mul") return MergeMode::kMul;
  if (name == "ave") return MergeMode::kAve;
  if (name == "none") return MergeMode::kNone;
  return Invalid(where, absl::StrCat("merge_mode: invalid merge mode '", name,
                                     "'; expected one of concat, sum, mul, "
                                     "ave, none"));
}

// The configuration rules of one direction that need no weights: a cell,
// positive units, and no field the cell does not have.
absl::Status CheckDirectionConfig(const RnnLayerSpec& config,
                                  absl::string_view where) {
  if (config.cell == CellType::kUnspecified) {
    return Invalid(where, "cell is not set; expected SIMPLE_RNN, LSTM or GRU");
  }
  if (config.units <= 0) {
    return Invalid(where,
                   absl::StrCat("units must be positive; was ", config.units));
  }
  if (config.cell == CellType::kSimpleRnn &&
      config.recurrent_activation.has_value()) {
    return Invalid(where,
                   "recurrent_activation is set but SimpleRNN has no gates; "
                   "remove it");
  }
  if (config.cell != CellType::kGru && config.reset_after.has_value()) {
    return Invalid(where, absl::StrCat("reset_after is set but only GRU has "
                                       "it; this layer is ",
                                       CellTypeName(config.cell)));
  }
  return absl::OkStatus();
}

absl::Status SetActivations(const RnnLayerSpec& config, absl::string_view where,
                            RnnDirection& d) {
  absl::StatusOr<Activation> activation = ActivationField(
      config.activation, Activation::kTanh, where, "activation");
  if (!activation.ok()) return activation.status();
  d.activation = *activation;
  absl::StatusOr<Activation> recurrent_activation =
      ActivationField(config.recurrent_activation, Activation::kSigmoid, where,
                      "recurrent_activation");
  if (!recurrent_activation.ok()) return recurrent_activation.status();
  d.recurrent_activation = *recurrent_activation;
  return absl::OkStatus();
}

// d.kernel and d.recurrent_kernel from `weights`, for d's cell and units.
absl::Status SetKernels(const RnnWeightsSpec& weights, absl::string_view where,
                        RnnDirection& d) {
  const int64_t g = d.gates();
  const int64_t u = d.units;
  const absl::string_view cell_name = CellTypeName(d.cell);
  const std::string gates = absl::StrCat(g, " * units");
  absl::StatusOr<RowMatrix> kernel =
      ToMatrix(weights.kernel, {d.input_size, g * u}, where, "weights.kernel",
               absl::StrCat("[input_size, ", gates, "] for ", cell_name));
  if (!kernel.ok()) return kernel.status();
  d.kernel = *std::move(kernel);
  absl::StatusOr<RowMatrix> recurrent = ToMatrix(
      weights.recurrent_kernel, {u, g * u}, where, "weights.recurrent_kernel",
      absl::StrCat("[units, ", gates, "] for ", cell_name));
  if (!recurrent.ok()) return recurrent.status();
  d.recurrent_kernel = *std::move(recurrent);
  return absl::OkStatus();
}

// d.input_bias (and d.recurrent_bias for GRU with reset_after) from
// `weights`: [2, 3 * units] for GRU with reset_after, [G * units] for the
// others, absent without use_bias (then zeros).
absl::Status SetBiases(const RnnLayerSpec& config,
                       const RnnWeightsSpec& weights, absl::string_view where,
                       RnnDirection& d) {
  const int64_t width = static_cast<int64_t>(d.gates()) * d.units;
  d.input_bias = RowVector::Zero(width);
  if (!config.use_bias.value_or(true)) {
    if (d.reset_after) d.recurrent_bias = RowVector::Zero(width);
    return ExpectAbsent(weights.bias, where, "weights.bias",
                        "use_bias is false");
  }
  if (d.reset_after) {
    absl::StatusOr<RowMatrix> bias =
        ToMatrix(weights.bias, {2, width}, where, "weights.bias",
                 "[2, 3 * units] for GRU with reset_after: input bias row, "
                 "then recurrent bias row");
    if (!bias.ok()) return bias.status();
    d.input_bias = bias->row(0);
    d.recurrent_bias = bias->row(1);
    return absl::OkStatus();
  }
  absl::StatusOr<RowMatrix> bias = ToMatrix(
      weights.bias, {width}, where, "weights.bias",
      absl::StrCat(
          "[", d.gates(), " * units] for ", CellTypeName(d.cell),
          d.cell == CellType::kGru ? " with reset_after = false" : ""));
  if (!bias.ok()) return bias.status();
  d.input_bias = bias->row(0);
  return absl::OkStatus();
}

// The packed copies of a direction's kernels, which every product runs on
// (PackedGemm); they add the biases as they multiply.
void PackKernels(RnnDirection& d, Precision precision) {
  d.kernel_packed = PackedWeights(d.kernel, d.input_bias, precision);
  if (d.cell == CellType::kGru && !d.reset_after) {
    // Its recurrent GEMM is split in two: the z and r columns, then the
    // candidate's, which wait for r.
    const int u = d.units;
    d.recurrent_packed = PackedWeights(d.recurrent_kernel.leftCols(2 * u),
                                       RowVector(), precision);
    d.recurrent_candidate_packed =
        PackedWeights(d.recurrent_kernel.rightCols(u), RowVector(), precision);
    return;
  }
  d.recurrent_packed =
      PackedWeights(d.recurrent_kernel,
                    d.reset_after ? d.recurrent_bias : RowVector(), precision);
}

// Builds one direction from its configuration (`config`) and weights.
// `where` names the direction for messages.
absl::StatusOr<RnnDirection> BuildDirection(const RnnLayerSpec& config,
                                            const RnnWeightsSpec& weights,
                                            bool go_backwards, int input_size,
                                            absl::string_view where) {
  if (absl::Status s = CheckDirectionConfig(config, where); !s.ok()) return s;
  RnnDirection d;
  d.name = config.name;
  d.cell = config.cell;
  d.units = config.units;
  d.input_size = input_size;
  d.go_backwards = go_backwards;
  d.reset_after =
      config.cell == CellType::kGru && config.reset_after.value_or(true);
  if (absl::Status s = SetActivations(config, where, d); !s.ok()) return s;
  if (absl::Status s = SetKernels(weights, where, d); !s.ok()) return s;
  if (absl::Status s = SetBiases(config, weights, where, d); !s.ok()) return s;
  return d;
}

// Keras' states of a layer with these directions, in Keras' order.
std::vector<StateSpec> StateSpecs(const RnnDirection& forward,
                                  const RnnDirection& backward) {
  std::vector<StateSpec> states;
  for (const auto& [direction, d] :
       {std::pair{Direction::kForward, &forward},
        std::pair{Direction::kBackward, &backward}}) {
    for (const StateKind kind : {StateKind::kH, StateKind::kC}) {
      if (kind == StateKind::kC && d->cell != CellType::kLstm) continue;
      states.push_back(StateSpec{.name = absl::StrCat(DirectionName(direction),
                                                      "_", StateKindName(kind)),
                                 .direction = direction,
                                 .kind = kind,
                                 .units = d->units});
    }
  }
  return states;
}

// Keras' Bidirectional rules for an explicit backward layer.
absl::Status CheckBackwardLayer(const RnnLayerSpec& forward,
                                const RnnLayerSpec& backward,
                                absl::string_view where) {
  if (forward.go_backwards == backward.go_backwards) {
    return Invalid(where,
                   absl::StrCat("forward and backward layers must have "
                                "different go_backwards values; both are ",
                                forward.go_backwards ? "true" : "false"));
  }
  const std::pair<const char*, std::pair<bool, bool>> attributes[] = {
      {"return_sequences",
       {forward.return_sequences, backward.return_sequences}},
      {"return_state", {forward.return_state, backward.return_state}},
      {"stateful", {forward.stateful, backward.stateful}},
  };
  for (const auto& [attribute, values] : attributes) {
    if (values.first != values.second) {
      return Invalid(
          where,
          absl::StrCat("forward and backward layers must have the same "
                       "value for ",
                       attribute, "; got ", values.first ? "true" : "false",
                       " for the forward layer and ",
                       values.second ? "true" : "false",
                       " for the backward layer"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BidirectionalLayer> BuildBidirectional(
    const BidirectionalSpec& spec, int input_size, absl::string_view where) {
  BidirectionalLayer layer;
  layer.name = spec.name;
  const RnnLayerSpec& forward = spec.layer;
  if (spec.backward_layer.has_value()) {
    absl::Status rules =
        CheckBackwardLayer(forward, *spec.backward_layer, where);
    if (!rules.ok()) return rules;
  } else if (!spec.backward_weights.has_value()) {
    return Invalid(where,
                   "the backward direction is missing: set backward_weights "
                   "(the backward copy of `layer`) or backward_layer (an "
                   "explicit backward layer)");
  }
  if (forward.stateful) {
    return Invalid(where,
                   "stateful = true is not supported: biserve evaluates each "
                   "request independently, so no state carries over between "
                   "requests; save the model with stateful = false");
  }
  absl::StatusOr<MergeMode> merge = ParseMergeMode(spec.merge_mode, where);
  if (!merge.ok()) return merge.status();
  layer.merge_mode = *merge;
  layer.masked_step_output = spec.masked_step_output;
  layer.return_sequences = forward.return_sequences;
  layer.return_state = forward.return_state;

  absl::StatusOr<RnnDirection> fw =
      BuildDirection(forward, forward.weights, forward.go_backwards, input_size,
                     absl::StrCat(where, " layer"));
  if (!fw.ok()) return fw.status();
  layer.forward = *std::move(fw);

  absl::StatusOr<RnnDirection> bw =
      spec.backward_layer.has_value()
          ? BuildDirection(*spec.backward_layer, spec.backward_layer->weights,
                           spec.backward_layer->go_backwards, input_size,
                           absl::StrCat(where, " backward_layer"))
          // Keras' default backward layer: the forward configuration with
          // go_backwards flipped.
          : BuildDirection(forward, *spec.backward_weights,
                           !forward.go_backwards, input_size,
                           absl::StrCat(where, " backward_weights"));
  if (!bw.ok()) return bw.status();
  layer.backward = *std::move(bw);
  layer.states = StateSpecs(layer.forward, layer.backward);

  if (layer.merge_mode != MergeMode::kConcat &&
      layer.merge_mode != MergeMode::kNone &&
      layer.forward.units != layer.backward.units) {
    return Invalid(
        where, absl::StrCat("merge_mode '", MergeModeName(layer.merge_mode),
                            "' needs directions of the same size; forward has ",
                            layer.forward.units, " units, backward has ",
                            layer.backward.units, " (use concat or none)"));
  }
  return layer;
}

absl::StatusOr<DenseLayer> BuildDense(const DenseSpec& spec, int input_size,
                                      absl::string_view where) {
  DenseLayer layer;
  layer.name = spec.name;
  if (spec.units <= 0) {
    return Invalid(where,
                   absl::StrCat("units must be positive; was ", spec.units));
  }
  absl::StatusOr<Activation> activation = ActivationField(
      spec.activation, Activation::kLinear, where, "activation");
  if (!activation.ok()) return activation.status();
  layer.activation = *activation;
  absl::StatusOr<RowMatrix> kernel =
      ToMatrix(spec.kernel, {input_size, spec.units}, where, "kernel",
               "[input_size, units]");
  if (!kernel.ok()) return kernel.status();
  layer.kernel = *std::move(kernel);
  if (spec.use_bias.value_or(true)) {
    absl::StatusOr<RowMatrix> bias =
        ToMatrix(spec.bias, {spec.units}, where, "bias", "[units]");
    if (!bias.ok()) return bias.status();
    layer.bias = bias->row(0);
  } else {
    absl::Status absent =
        ExpectAbsent(spec.bias, where, "bias", "use_bias is false");
    if (!absent.ok()) return absent;
    layer.bias = RowVector::Zero(spec.units);
  }
  return layer;
}

absl::StatusOr<EmbeddingLayer> BuildEmbedding(const EmbeddingSpec& spec,
                                              absl::string_view where) {
  if (spec.input_dim <= 0 || spec.output_dim <= 0) {
    return Invalid(where,
                   absl::StrCat("input_dim (vocabulary) and output_dim "
                                "must be positive; were ",
                                spec.input_dim, " and ", spec.output_dim));
  }
  absl::StatusOr<RowMatrix> embeddings =
      ToMatrix(spec.embeddings, {spec.input_dim, spec.output_dim}, where,
               "embeddings", "[input_dim, output_dim]");
  if (!embeddings.ok()) return embeddings.status();
  return EmbeddingLayer{spec.name, *std::move(embeddings), spec.mask_zero};
}

absl::StatusOr<ActivationLayer> BuildActivation(const ActivationSpec& spec,
                                                absl::string_view where) {
  if (spec.activation.empty()) {
    return Invalid(where,
                   "activation is not set; expected a Keras "
                   "activation name such as relu or tanh");
  }
  absl::StatusOr<Activation> activation = ActivationField(
      spec.activation, Activation::kLinear, where, "activation");
  if (!activation.ok()) return activation.status();
  return ActivationLayer{spec.name, *activation};
}

// Keras' epsilon for both normalization layers: positive and finite (Keras
// itself accepts any float, but 0 with a zero variance divides by zero).
absl::StatusOr<float> Epsilon(const std::optional<float>& epsilon,
                              absl::string_view where) {
  const float value = epsilon.value_or(1e-3f);
  if (!(value > 0.0f) || !std::isfinite(value)) {
    return Invalid(
        where,
        absl::StrCat("epsilon must be positive and finite; was ", value));
  }
  return value;
}

// gamma (when `present`, the flag `flag` being true) or beta as [features],
// or an empty vector after checking the tensor is absent.
absl::StatusOr<RowVector> OptionalVector(const Tensor& tensor, bool present,
                                         int features, absl::string_view where,
                                         absl::string_view field,
                                         absl::string_view flag) {
  if (!present) {
    absl::Status absent =
        ExpectAbsent(tensor, where, field, absl::StrCat(flag, " is false"));
    if (!absent.ok()) return absent;
    return RowVector();
  }
  absl::StatusOr<RowMatrix> vector =
      ToMatrix(tensor, {features}, where, field, "[features]");
  if (!vector.ok()) return vector.status();
  return RowVector(vector->row(0));
}

absl::StatusOr<BatchNormalizationLayer> BuildBatchNormalization(
    const BatchNormalizationSpec& spec, int features, absl::string_view where) {
  absl::StatusOr<float> epsilon = Epsilon(spec.epsilon, where);
  if (!epsilon.ok()) return epsilon.status();
  absl::StatusOr<RowVector> gamma = OptionalVector(
      spec.gamma, spec.scale.value_or(true), features, where, "gamma", "scale");
  if (!gamma.ok()) return gamma.status();
  absl::StatusOr<RowVector> beta = OptionalVector(
      spec.beta, spec.center.value_or(true), features, where, "beta", "center");
  if (!beta.ok()) return beta.status();
  absl::StatusOr<RowVector> mean = OptionalVector(
      spec.moving_mean, true, features, where, "moving_mean", "");
  if (!mean.ok()) return mean.status();
  absl::StatusOr<RowVector> variance = OptionalVector(
      spec.moving_variance, true, features, where, "moving_variance", "");
  if (!variance.ok()) return variance.status();
  for (int j = 0; j < features; ++j) {
    if ((*variance)(j) < 0.0f) {
      return Invalid(where,
                     absl::StrCat("moving_variance: value ", j, " is ",
                                  (*variance)(j), "; a variance must be >= 0"));
    }
  }
  BatchNormalizationLayer layer{.name = spec.name,
                                .inv = RowVector(features),
                                .shift = RowVector(features),
                                .epsilon = *epsilon};
  FoldBatchNormalization(absl::MakeConstSpan(gamma->data(), gamma->size()),
                         absl::MakeConstSpan(beta->data(), beta->size()),
                         absl::MakeConstSpan(mean->data(), features),
                         absl::MakeConstSpan(variance->data(), features),
                         *epsilon, absl::MakeSpan(layer.inv.data(), features),
                         absl::MakeSpan(layer.shift.data(), features));
  layer.gamma = *std::move(gamma);
  layer.beta = *std::move(beta);
  layer.moving_mean = *std::move(mean);
  layer.moving_variance = *std::move(variance);
  return layer;
}

absl::StatusOr<LayerNormalizationLayer> BuildLayerNormalization(
    const LayerNormalizationSpec& spec, int features, absl::string_view where) {
  absl::StatusOr<float> epsilon = Epsilon(spec.epsilon, where);
  if (!epsilon.ok()) return epsilon.status();
  absl::StatusOr<RowVector> gamma = OptionalVector(
      spec.gamma, spec.scale.value_or(true), features, where, "gamma", "scale");
  if (!gamma.ok()) return gamma.status();
  absl::StatusOr<RowVector> beta = OptionalVector(
      spec.beta, spec.center.value_or(true), features, where, "beta", "center");
  if (!beta.ok()) return beta.status();
  return LayerNormalizationLayer{spec.name, *epsilon, *std::move(gamma),
                                 *std::move(beta)};
}

// input_dim: 0 for token ids (the first layer is an Embedding), else the
// float features per time step.
absl::Status CheckInputDim(int input_dim, bool token_input,
                           absl::string_view model_label) {
  if (token_input && input_dim != 0) {
    return Invalid(model_label,
                   absl::StrCat("input_dim must be 0 when the first layer "
                                "is an Embedding (inputs are token ids); "
                                "was ",
                                input_dim));
  }
  if (!token_input && input_dim <= 0) {
    return Invalid(model_label,
                   absl::StrCat("input_dim must be positive (float features "
                                "per time step); was ",
                                input_dim));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view MergeModeName(MergeMode mode) {
  switch (mode) {
    case MergeMode::kConcat:
      return "concat";
    case MergeMode::kSum:
      return "sum";
    case MergeMode::kMul:
      return "mul";
    case MergeMode::kAve:
      return "ave";
    case MergeMode::kNone:
      return "none";
  }
  return "unknown";
}

int GateCount(CellType cell) {
  switch (cell) {
    case CellType::kLstm:
      return 4;
    case CellType::kGru:
      return 3;
    default:
      return 1;
  }
}

int StateCount(CellType cell) { return cell == CellType::kLstm ? 2 : 1; }

absl::string_view CellTypeName(CellType cell) {
  switch (cell) {
    case CellType::kSimpleRnn:
      return "SimpleRNN";
    case CellType::kLstm:
      return "LSTM";
    case CellType::kGru:
      return "GRU";
    case CellType::kUnspecified:
      break;
  }
  return "unspecified";
}

void DenseLayer::Apply(RowMatrix& x) const {
  // PackedGemm writes whole panels (and adds the bias); the columns past
  // units are dropped.
  RowMatrix y(x.rows(), kernel_packed.padded_cols());
  if (x.rows() > 0) {
    PackedGemm(x.data(), x.cols(), x.rows(), kernel_packed, y.data(), y.cols());
  }
  if (activation != Activation::kLinear) {
    for (Eigen::Index r = 0; r < y.rows(); ++r) {
      Activate(activation, absl::Span<float>(&y(r, 0), units()));
    }
  }
  x = y.leftCols(units());
}

void ActivationLayer::Apply(RowMatrix& x) const {
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    Activate(activation, absl::Span<float>(&x(r, 0), x.cols()));
  }
}

void BatchNormalizationLayer::Apply(RowMatrix& x) const {
  const absl::Span<const float> scale(inv.data(), inv.size());
  const absl::Span<const float> offset(shift.data(), shift.size());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    ScaleAndShift(scale, offset, absl::Span<float>(&x(r, 0), x.cols()));
  }
}

void LayerNormalizationLayer::Apply(RowMatrix& x) const {
  const absl::Span<const float> g(gamma.data(), gamma.size());
  const absl::Span<const float> b(beta.data(), beta.size());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    LayerNormalize(g, b, epsilon, absl::Span<float>(&x(r, 0), x.cols()));
  }
}

bool ApplyRowLayer(const StackLayer& layer, RowMatrix& x) {
  if (const auto* dense = std::get_if<DenseLayer>(&layer)) {
    dense->Apply(x);
  } else if (const auto* a = std::get_if<ActivationLayer>(&layer)) {
    a->Apply(x);
  } else if (const auto* bn = std::get_if<BatchNormalizationLayer>(&layer)) {
    bn->Apply(x);
  } else if (const auto* ln = std::get_if<LayerNormalizationLayer>(&layer)) {
    ln->Apply(x);
  } else {
    return false;
  }
  return true;
}

int BidirectionalLayer::output_size() const {
  return merge_mode == MergeMode::kConcat || merge_mode == MergeMode::kNone
             ? forward.units + backward.units
             : forward.units;
}

int BidirectionalLayer::state_count() const {
  return forward.state_count() + backward.state_count();
}

int BidirectionalLayer::state_index(Direction d, StateKind kind) const {
  for (int i = 0; i < static_cast<int>(states.size()); ++i) {
    if (states[i].direction == d && states[i].kind == kind) return i;
  }
  return -1;
}

absl::string_view DirectionName(Direction direction) {
  return direction == Direction::kForward ? "forward" : "backward";
}

absl::string_view StateKindName(StateKind kind) {
  return kind == StateKind::kH ? "h" : "c";
}

struct Model::StackShape {
  int width = 0;             // values per step (or per sequence) so far
  bool is_sequence = true;   // whether the current value has a time axis
  bool token_input = false;  // whether the first layer is an Embedding
};

namespace {

// The names of the Bidirectional layers, in order: the spec's, or for an
// unnamed layer Keras' default ("bidirectional", "bidirectional_1", ...,
// skipping names taken). They name state tensors (state/<layer>/forward_h),
// so two layers may not share one.
absl::StatusOr<std::vector<std::string>> BidirectionalNames(
    const ModelSpec& spec) {
  std::map<std::string, int> taken;  // name -> index in spec.layers
  for (int i = 0; i < static_cast<int>(spec.layers.size()); ++i) {
    const auto* bidi = std::get_if<BidirectionalSpec>(&spec.layers[i]);
    if (bidi == nullptr || bidi->name.empty()) continue;
    auto [it, inserted] = taken.emplace(bidi->name, i);
    if (!inserted) {
      return Invalid(LayerLabel(i, bidi->name),
                     absl::StrCat("has the same name as layers[", it->second,
                                  "]; Bidirectional layers need distinct "
                                  "names (they name the state tensors)"));
    }
  }
  std::vector<std::string> names;
  int next = 0;
  for (const LayerSpec& layer : spec.layers) {
    const auto* bidi = std::get_if<BidirectionalSpec>(&layer);
    if (bidi == nullptr) continue;
    std::string name = bidi->name;
    while (name.empty() || (bidi->name.empty() && taken.contains(name))) {
      name = next == 0 ? "bidirectional" : absl::StrCat("bidirectional_", next);
      ++next;
    }
    taken.emplace(name, -1);
    names.push_back(std::move(name));
  }
  return names;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Model>> Model::Create(
    const ModelSpec& spec, Precision precision) {
  auto model = std::shared_ptr<Model>(new Model());
  model->name_ = spec.name;
  model->requested_precision_ = precision;
  model->precision_ = ServablePrecision(precision);
  const std::string model_label = spec.name.empty()
                                      ? std::string("model")
                                      : absl::StrCat("model '", spec.name, "'");
  if (spec.layers.empty()) {
    return Invalid(model_label,
                   "has no layers; expected at least one "
                   "Bidirectional layer");
  }
  StackShape shape{.width = spec.input_dim,
                   .token_input = std::holds_alternative<EmbeddingSpec>(
                       spec.layers.front())};
  if (absl::Status s =
          CheckInputDim(spec.input_dim, shape.token_input, model_label);
      !s.ok()) {
    return s;
  }
  model->input_dim_ = spec.input_dim;
  if (spec.declared_time_steps < 0) {
    return Invalid(model_label,
                   absl::StrCat("declared_time_steps must not be negative, "
                                "got ",
                                spec.declared_time_steps));
  }
  model->declared_time_steps_ = spec.declared_time_steps;
  absl::StatusOr<std::vector<std::string>> names = BidirectionalNames(spec);
  if (!names.ok()) return names.status();
  const int count = static_cast<int>(spec.layers.size());
  for (int i = 0; i < count; ++i) {
    absl::Status added =
        model->AddLayer(spec.layers[i], i, /*is_last=*/i + 1 == count, shape);
    if (!added.ok()) return added;
  }
  if (model->bidirectional_count_ == 0) {
    return Invalid(model_label, "has no Bidirectional layer");
  }
  int named = 0;
  for (StackLayer& layer : model->layers_) {
    if (auto* bidi = std::get_if<BidirectionalLayer>(&layer)) {
      bidi->name = (*names)[named++];
    }
  }
  model->returns_sequences_ = shape.is_sequence;
  const auto* last = std::get_if<BidirectionalLayer>(&model->layers_.back());
  model->output_size_ =
      last != nullptr && last->merge_mode == MergeMode::kNone ? 0 : shape.width;
  model->PackWeights();
  model->SetPaddingStepOutput();
  if (spec.signature.has_value()) {
    if (absl::Status s = CheckSignature(*spec.signature, *model); !s.ok()) {
      return Invalid(model_label, s.message());
    }
    model->signature_ = spec.signature;
  }
  return std::shared_ptr<const Model>(std::move(model));
}

void Model::PackWeights() {
  for (StackLayer& layer : layers_) {
    if (auto* bidi = std::get_if<BidirectionalLayer>(&layer)) {
      PackKernels(bidi->forward, precision_);
      PackKernels(bidi->backward, precision_);
    } else if (auto* dense = std::get_if<DenseLayer>(&layer)) {
      dense->kernel_packed =
          PackedWeights(dense->kernel, dense->bias, precision_);
    }
  }
}

void Model::SetPaddingStepOutput() {
  if (!returns_sequences_ || output_size_ == 0) return;
  RowMatrix x =
      RowMatrix::Zero(1, bidirectional(last_bidirectional_).output_size());
  // Every layer after the last Bidirectional works on rows: a GlobalPooling
  // there would have made the output a vector.
  for (size_t i = last_bidirectional_ + 1; i < layers_.size(); ++i) {
    ApplyRowLayer(layers_[i], x);
  }
  padding_step_output_ = x.row(0);
}

absl::Status Model::AddLayer(const LayerSpec& spec, int index, bool is_last,
                             StackShape& shape) {
  if (const auto* embedding = std::get_if<EmbeddingSpec>(&spec)) {
    const std::string where = LayerLabel(index, embedding->name);
    if (index != 0) {
      return Invalid(where, "an Embedding layer must be the first layer");
    }
    absl::StatusOr<EmbeddingLayer> built = BuildEmbedding(*embedding, where);
    if (!built.ok()) return built.status();
    shape.width = embedding->output_dim;
    embedding_ = *std::move(built);
    return absl::OkStatus();
  }
  if (const auto* masking = std::get_if<MaskingSpec>(&spec)) {
    const std::string where = LayerLabel(index, masking->name);
    if (index != 0 || shape.token_input) {
      return Invalid(where,
                     "a Masking layer must be the first layer, on float "
                     "features (for token ids, use the Embedding's "
                     "mask_zero)");
    }
    if (!std::isfinite(masking->mask_value)) {
      return Invalid(where, "mask_value must be finite");
    }
    mask_value_ = masking->mask_value;
    return absl::OkStatus();
  }
  if (const auto* bidi = std::get_if<BidirectionalSpec>(&spec)) {
    return AddBidirectional(*bidi, LayerLabel(index, bidi->name), is_last,
                            shape);
  }
  absl::StatusOr<bool> added = AddOtherLayer(spec, index, shape);
  if (!added.ok()) return added.status();
  if (*added) return absl::OkStatus();
  return Invalid(LayerLabel(index, ""),
                 "layer kind is not set; expected embedding, masking, "
                 "bidirectional, dense, activation, batch_normalization, "
                 "layer_normalization or global_pooling");
}

absl::StatusOr<bool> Model::AddOtherLayer(const LayerSpec& spec, int index,
                                          StackShape& shape) {
  if (const auto* dense = std::get_if<DenseSpec>(&spec)) {
    absl::StatusOr<DenseLayer> built =
        BuildDense(*dense, shape.width, LayerLabel(index, dense->name));
    if (!built.ok()) return built.status();
    shape.width = built->units();
    layers_.push_back(*std::move(built));
  } else if (const auto* a = std::get_if<ActivationSpec>(&spec)) {
    absl::StatusOr<ActivationLayer> built =
        BuildActivation(*a, LayerLabel(index, a->name));
    if (!built.ok()) return built.status();
    layers_.push_back(*std::move(built));
  } else if (const auto* bn = std::get_if<BatchNormalizationSpec>(&spec)) {
    absl::StatusOr<BatchNormalizationLayer> built =
        BuildBatchNormalization(*bn, shape.width, LayerLabel(index, bn->name));
    if (!built.ok()) return built.status();
    layers_.push_back(*std::move(built));
  } else if (const auto* ln = std::get_if<LayerNormalizationSpec>(&spec)) {
    absl::StatusOr<LayerNormalizationLayer> built =
        BuildLayerNormalization(*ln, shape.width, LayerLabel(index, ln->name));
    if (!built.ok()) return built.status();
    layers_.push_back(*std::move(built));
  } else if (const auto* pool = std::get_if<GlobalPoolingSpec>(&spec)) {
    const std::string where = LayerLabel(index, pool->name);
    if (pool->pooling == PoolingType::kUnspecified) {
      return Invalid(where, "pooling is not set; expected MAX or AVERAGE");
    }
    if (!shape.is_sequence) {
      return Invalid(where,
                     "a GlobalPooling layer needs a sequence input, but the "
                     "layer before it outputs one vector per sequence (a "
                     "Bidirectional with return_sequences = false, or "
                     "another GlobalPooling)");
    }
    shape.is_sequence = false;
    layers_.push_back(GlobalPoolingLayer{pool->name, pool->pooling});
  } else {
    return false;
  }
  return true;
}

absl::Status Model::AddBidirectional(const BidirectionalSpec& spec,
                                     absl::string_view where, bool is_last,
                                     StackShape& shape) {
  if (!shape.is_sequence) {
    return Invalid(where,
                   "a Bidirectional layer needs a sequence input, but the "
                   "layers before it output one vector per sequence (a "
                   "Bidirectional with return_sequences = false, or a "
                   "GlobalPooling)");
  }
  absl::StatusOr<BidirectionalLayer> built =
      BuildBidirectional(spec, shape.width, where);
  if (!built.ok()) return built.status();
  if (built->merge_mode == MergeMode::kNone && !is_last) {
    return Invalid(where,
                   "merge_mode 'none' returns the two directions "
                   "separately, so it must be the last layer; the layers "
                   "after it need one input");
  }
  shape.width = built->output_size();
  shape.is_sequence = built->return_sequences;
  const int index = static_cast<int>(layers_.size());
  if (first_bidirectional_ < 0) first_bidirectional_ = index;
  last_bidirectional_ = index;
  ++bidirectional_count_;
  layers_.push_back(*std::move(built));
  return absl::OkStatus();
}

}  // namespace biserve
