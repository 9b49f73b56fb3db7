// ModelSpec: a model as written in its file, before any validation.
//
// These plain structs mirror proto/biserve/v1/model.proto field for field so
// that core/ never sees protobuf; proto/model_codec.h fills them in, and
// Model::Create (core/model/model.h) validates them. Optional fields keep their
// presence so that Keras' defaults apply only where the file is silent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/common/tensor.h"
#include "core/model/signature.h"

namespace biserve {

enum class CellType { kUnspecified, kSimpleRnn, kLstm, kGru };

struct RnnWeightsSpec {
  Tensor kernel;            // [input_size, G * units]
  Tensor recurrent_kernel;  // [units, G * units]
  Tensor bias;              // [G * units], [2, 3 * units] or empty
};

struct RnnLayerSpec {
  std::string name;
  CellType cell = CellType::kUnspecified;
  int units = 0;
  std::optional<std::string> activation;            // default "tanh"
  std::optional<std::string> recurrent_activation;  // default "sigmoid"
  std::optional<bool> use_bias;                     // default true
  std::optional<bool> reset_after;                  // GRU; default true
  bool go_backwards = false;
  bool return_sequences = false;
  bool return_state = false;
  bool stateful = false;
  RnnWeightsSpec weights;
};

// What a direction outputs at a masked step when it returns sequences (see
// MaskedStepOutput in model.proto).
enum class MaskedStepOutput {
  kZeros,  // Keras' Bidirectional
  kState,  // TensorFlow.js: the direction's current h
};

struct BidirectionalSpec {
  std::string name;
  RnnLayerSpec layer;
  // At most one of these is set (a proto oneof); neither is an error.
  std::optional<RnnWeightsSpec> backward_weights;
  std::optional<RnnLayerSpec> backward_layer;
  std::string merge_mode;  // empty means "concat"
  MaskedStepOutput masked_step_output = MaskedStepOutput::kZeros;
};

struct EmbeddingSpec {
  std::string name;
  int input_dim = 0;
  int output_dim = 0;
  Tensor embeddings;  // [input_dim, output_dim]
  bool mask_zero = false;
};

struct MaskingSpec {
  std::string name;
  float mask_value = 0.0f;
};

struct DenseSpec {
  std::string name;
  int units = 0;
  std::optional<std::string> activation;  // default "linear"
  std::optional<bool> use_bias;           // default true
  Tensor kernel;                          // [input_size, units]
  Tensor bias;                            // [units] or empty
};

struct ActivationSpec {
  std::string name;
  std::string activation;  // required
};

// BatchNormalization (at inference) and LayerNormalization share their
// fields; moving_mean and moving_variance are BatchNormalization's only.
struct BatchNormalizationSpec {
  std::string name;
  std::optional<float> epsilon;  // default 0.001
  std::optional<bool> center;    // default true
  std::optional<bool> scale;     // default true
  Tensor gamma;                  // [features] or empty
  Tensor beta;                   // [features] or empty
  Tensor moving_mean;            // [features]
  Tensor moving_variance;        // [features]
};

struct LayerNormalizationSpec {
  std::string name;
  std::optional<float> epsilon;  // default 0.001
  std::optional<bool> center;    // default true
  std::optional<bool> scale;     // default true
  Tensor gamma;                  // [features] or empty
  Tensor beta;                   // [features] or empty
};

enum class PoolingType { kUnspecified, kMax, kAverage };

struct GlobalPoolingSpec {
  std::string name;
  PoolingType pooling = PoolingType::kUnspecified;
};

// std::monostate stands for a layer whose kind the file does not set.
using LayerSpec =
    std::variant<std::monostate, EmbeddingSpec, BidirectionalSpec, DenseSpec,
                 MaskingSpec, ActivationSpec, BatchNormalizationSpec,
                 LayerNormalizationSpec, GlobalPoolingSpec>;

struct ModelSpec {
  std::string name;
  int input_dim = 0;  // 0 when the first layer is an Embedding
  std::vector<LayerSpec> layers;
  // Names and layouts for clients of the framework the model came from;
  // absent for models written for biserve.
  std::optional<Signature> signature;
  // The time dimension the source model declared; 0 if none. Informational:
  // any length is served.
  int64_t declared_time_steps = 0;
};

}  // namespace biserve
