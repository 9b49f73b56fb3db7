// Model: an immutable, validated bidirectional RNN model ready to evaluate.
//
// Thread-safety: a Model never changes after Create, so any number of threads
// may evaluate it at once; it is shared as std::shared_ptr<const Model>.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/common/eigen_types.h"
#include "core/kernels/activation.h"
#include "core/kernels/packed_weights.h"
#include "core/kernels/precision.h"
#include "core/model/model_spec.h"
#include "core/model/signature.h"
#include "core/model/state_spec.h"

namespace biserve {

enum class MergeMode { kConcat, kSum, kMul, kAve, kNone };

absl::string_view MergeModeName(MergeMode mode);

// Gates per cell: SimpleRNN 1, LSTM 4 (i, f, c, o), GRU 3 (z, r, h).
int GateCount(CellType cell);
// State tensors per cell: LSTM 2 (h, c), others 1 (h).
int StateCount(CellType cell);
absl::string_view CellTypeName(CellType cell);

// One direction of a Bidirectional layer: a Keras SimpleRNN, LSTM or GRU.
struct RnnDirection {
  std::string name;
  CellType cell = CellType::kUnspecified;
  int units = 0;
  int input_size = 0;
  Activation activation = Activation::kTanh;
  Activation recurrent_activation = Activation::kSigmoid;  // LSTM, GRU
  bool reset_after = false;                                // GRU only
  // Keras' go_backwards: the layer reads its input from the last step to the
  // first, and (with return_sequences) emits outputs in that order.
  bool go_backwards = false;

  RowMatrix kernel;            // [input_size, G * units]
  RowMatrix recurrent_kernel;  // [units, G * units]
  // Bias added to the input projection, [G * units]; zeros without use_bias.
  // A GRU with reset_after = false keeps its only bias here.
  RowVector input_bias;
  // GRU with reset_after = true: the recurrent bias, [3 * units], added to
  // h * U before the reset gate scales it. Empty otherwise.
  RowVector recurrent_bias;
  // The packed copies every product runs on, in the model's precision
  // (Model::precision), built by Create once the model is valid.
  // recurrent_kernel, with recurrent_bias as its bias row for GRU with
  // reset_after; for GRU with reset_after = false, only its z and r columns
  // ([units, 2 * units]).
  PackedWeights recurrent_packed;
  // GRU with reset_after = false: the candidate's columns of
  // recurrent_kernel ([units, units]). Empty otherwise.
  PackedWeights recurrent_candidate_packed;
  // kernel, with input_bias as its bias row.
  PackedWeights kernel_packed;

  int gates() const { return GateCount(cell); }
  int state_count() const { return StateCount(cell); }
};

struct BidirectionalLayer {
  std::string name;
  RnnDirection forward;
  RnnDirection backward;
  MergeMode merge_mode = MergeMode::kConcat;
  MaskedStepOutput masked_step_output = MaskedStepOutput::kZeros;
  bool return_sequences = false;
  bool return_state = false;
  // The layer's states in Keras' order (forward h, forward c, backward h,
  // backward c, as the cells have them): the order of an initial_state list
  // and of the final states. Built by Model::Create from the cells.
  std::vector<StateSpec> states;

  const RnnDirection& direction(Direction d) const {
    return d == Direction::kForward ? forward : backward;
  }
  // Index into `states` of direction d's state of `kind`; -1 when its cell
  // has none (c of a SimpleRNN or GRU).
  int state_index(Direction d, StateKind kind) const;
  // Width of the merged output; for kNone, the two widths added (what a
  // concat would give), used only for shape checks.
  int output_size() const;
  // forward.state_count() + backward.state_count(): the length of an
  // initial_state list (and of `states`).
  int state_count() const;
};

struct DenseLayer {
  std::string name;
  Activation activation = Activation::kLinear;
  RowMatrix kernel;             // [input_size, units]
  RowVector bias;               // [units]; zeros without use_bias
  PackedWeights kernel_packed;  // kernel with bias as its bias row
  int units() const { return static_cast<int>(kernel.cols()); }
  // x := activation(x * kernel + bias), row by row; x is [rows,
  // input_size] before and [rows, units] after.
  void Apply(RowMatrix& x) const;
};

struct EmbeddingLayer {
  std::string name;
  RowMatrix embeddings;    // [vocabulary, output_dim]
  bool mask_zero = false;  // token id 0 marks a step to skip
};

// Keras' Activation layer: activation on every row (step or vector).
struct ActivationLayer {
  std::string name;
  Activation activation = Activation::kLinear;
  // x := activation(x), row by row.
  void Apply(RowMatrix& x) const;
};

// Keras' BatchNormalization at inference, folded by Create into one scale
// and shift per feature (FoldBatchNormalization).
struct BatchNormalizationLayer {
  std::string name;
  RowVector inv;    // [features]: gamma / sqrt(moving_variance + epsilon)
  RowVector shift;  // [features]: beta - moving_mean * inv
  // The file's values, kept for metadata and tests: gamma and beta are
  // empty without scale or center.
  float epsilon = 1e-3f;
  RowVector gamma, beta, moving_mean, moving_variance;  // [features]
  // x := x * inv + shift, row by row.
  void Apply(RowMatrix& x) const;
};

// Keras' LayerNormalization over the features of every row.
struct LayerNormalizationLayer {
  std::string name;
  float epsilon = 1e-3f;
  RowVector gamma;  // [features]; empty when scale = false
  RowVector beta;   // [features]; empty when center = false
  // Every row normalised on its own (LayerNormalize).
  void Apply(RowMatrix& x) const;
};

// Keras' GlobalMaxPooling1D or GlobalAveragePooling1D: a sequence to one
// vector per sequence (see PoolingType in model.proto for masks).
struct GlobalPoolingLayer {
  std::string name;
  PoolingType pooling = PoolingType::kMax;
};

// A layer after the optional Masking or Embedding.
using StackLayer = std::variant<BidirectionalLayer, DenseLayer, ActivationLayer,
                                BatchNormalizationLayer,
                                LayerNormalizationLayer, GlobalPoolingLayer>;

// Applies a layer that works on every row alone (Dense, Activation,
// BatchNormalization, LayerNormalization) to the rows of x. Returns false,
// leaving x unchanged, for Bidirectional and GlobalPooling layers.
bool ApplyRowLayer(const StackLayer& layer, RowMatrix& x);

class Model {
 public:
  // Validates `spec` the way Keras builds the same layers and returns the
  // model, or INVALID_ARGUMENT naming the layer, the field, and what was
  // expected and found.
  // `precision` is the one asked for (config.pbtxt, --precision); the
  // model packs its kernels in ServablePrecision(precision).
  static absl::StatusOr<std::shared_ptr<const Model>> Create(
      const ModelSpec& spec, Precision precision = Precision::kFp32);

  const std::string& name() const { return name_; }
  // True when inputs are token ids (the first layer is an Embedding).
  bool takes_token_ids() const { return embedding_.has_value(); }
  // Values per time step of a feature input; 0 for token-id models.
  int input_dim() const { return input_dim_; }
  const std::optional<EmbeddingLayer>& embedding() const { return embedding_; }
  // Keras' Masking layer's mask_value, when the model starts with one: a
  // step whose features all equal it is skipped by every recurrent layer.
  const std::optional<float>& mask_value() const { return mask_value_; }
  // Whether some input steps may be skipped (Masking, or Embedding with
  // mask_zero), as Keras' masks make recurrent layers do.
  bool masks_steps() const {
    return mask_value_.has_value() || (embedding_ && embedding_->mask_zero);
  }
  const std::vector<StackLayer>& layers() const { return layers_; }

  // Index into layers() of the first and last Bidirectional layer. The first
  // takes the request's initial_state; the last gives per-direction outputs.
  int first_bidirectional() const { return first_bidirectional_; }
  int last_bidirectional() const { return last_bidirectional_; }
  const BidirectionalLayer& bidirectional(int index) const {
    return std::get<BidirectionalLayer>(layers_[index]);
  }
  int bidirectional_count() const { return bidirectional_count_; }

  // Whether the model's output has a time axis ([T, D]) or not ([D]).
  bool returns_sequences() const { return returns_sequences_; }
  // Width D of the model's output; 0 when the last layer is a Bidirectional
  // with merge mode none (its two directions are the outputs).
  int output_size() const { return output_size_; }

  // The model's output at a padding step (t >= a sequence's length) of a
  // sequence output, as ONNX Runtime computes it: the layers after the last
  // Bidirectional (Dense, Activation and normalization layers, all per
  // step) applied to a zero vector of its output width; zeros when there
  // are none. [output_size()]
  // when returns_sequences() and output_size() > 0, else empty. Computed
  // once, by Create.
  const RowVector& padding_step_output() const { return padding_step_output_; }

  // How clients of the framework the model came from name and lay out its
  // tensors; checked against the model by Create (CheckSignature).
  const std::optional<Signature>& signature() const { return signature_; }

  // The time dimension the source model declared (e.g. a Keras input shape
  // [None, 200, 64]); 0 when none. Informational: sequences of any length
  // are served, as Keras itself allows for RNNs.
  int64_t declared_time_steps() const { return declared_time_steps_; }

  // The precision the kernels are stored and multiplied in, and the one
  // asked for; they differ where this CPU has no bf16 kernel
  // (PrecisionFallbackReason says why).
  Precision precision() const { return precision_; }
  Precision requested_precision() const { return requested_precision_; }

 private:
  // The width and time axis of the value the layers added so far output.
  struct StackShape;

  Model() = default;

  // Validates the layer `spec` (layers[index] of the file) on top of the
  // layers added so far, and adds it.
  absl::Status AddLayer(const LayerSpec& spec, int index, bool is_last,
                        StackShape& shape);
  // Packs every kernel in precision_ (PackedWeights), once the layers are
  // built and valid.
  void PackWeights();
  // padding_step_output_, once the layers are built.
  void SetPaddingStepOutput();
  absl::Status AddBidirectional(const BidirectionalSpec& spec,
                                absl::string_view where, bool is_last,
                                StackShape& shape);
  // The layers that keep the time axis as it is (Dense, Activation,
  // BatchNormalization, LayerNormalization) and GlobalPooling; false when
  // `spec` is none of them.
  absl::StatusOr<bool> AddOtherLayer(const LayerSpec& spec, int index,
                                     StackShape& shape);

  std::string name_;
  int input_dim_ = 0;
  std::optional<EmbeddingLayer> embedding_;
  std::optional<float> mask_value_;
  std::vector<StackLayer> layers_;
  int first_bidirectional_ = -1;
  int last_bidirectional_ = -1;
  int bidirectional_count_ = 0;
  bool returns_sequences_ = true;
  int output_size_ = 0;
  RowVector padding_step_output_;
  std::optional<Signature> signature_;
  int64_t declared_time_steps_ = 0;
  Precision precision_ = Precision::kFp32;
  Precision requested_precision_ = Precision::kFp32;
};

}  // namespace biserve
