#include "proto/model_codec.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "proto/parse_text_proto.h"
#include "proto/read_file.h"

namespace biserve {
namespace {

RnnWeightsSpec WeightsFromProto(const v1::RnnWeights& proto) {
  return RnnWeightsSpec{TensorFromProto(proto.kernel()),
                        TensorFromProto(proto.recurrent_kernel()),
                        TensorFromProto(proto.bias())};
}

CellType CellFromProto(v1::CellType cell) {
  switch (cell) {
    case v1::SIMPLE_RNN:
      return CellType::kSimpleRnn;
    case v1::LSTM:
      return CellType::kLstm;
    case v1::GRU:
      return CellType::kGru;
    default:
      return CellType::kUnspecified;
  }
}

RnnLayerSpec RnnFromProto(const v1::RnnLayer& proto) {
  RnnLayerSpec spec;
  spec.name = proto.name();
  spec.cell = CellFromProto(proto.cell());
  spec.units = proto.units();
  if (proto.has_activation()) spec.activation = proto.activation();
  if (proto.has_recurrent_activation()) {
    spec.recurrent_activation = proto.recurrent_activation();
  }
  if (proto.has_use_bias()) spec.use_bias = proto.use_bias();
  if (proto.has_reset_after()) spec.reset_after = proto.reset_after();
  spec.go_backwards = proto.go_backwards();
  spec.return_sequences = proto.return_sequences();
  spec.return_state = proto.return_state();
  spec.stateful = proto.stateful();
  spec.weights = WeightsFromProto(proto.weights());
  return spec;
}

BatchNormalizationSpec BatchNormalizationFromProto(
    const v1::BatchNormalizationLayer& proto) {
  BatchNormalizationSpec spec;
  spec.name = proto.name();
  if (proto.has_epsilon()) spec.epsilon = proto.epsilon();
  if (proto.has_center()) spec.center = proto.center();
  if (proto.has_scale()) spec.scale = proto.scale();
  spec.gamma = TensorFromProto(proto.gamma());
  spec.beta = TensorFromProto(proto.beta());
  spec.moving_mean = TensorFromProto(proto.moving_mean());
  spec.moving_variance = TensorFromProto(proto.moving_variance());
  return spec;
}

LayerNormalizationSpec LayerNormalizationFromProto(
    const v1::LayerNormalizationLayer& proto) {
  LayerNormalizationSpec spec;
  spec.name = proto.name();
  if (proto.has_epsilon()) spec.epsilon = proto.epsilon();
  if (proto.has_center()) spec.center = proto.center();
  if (proto.has_scale()) spec.scale = proto.scale();
  spec.gamma = TensorFromProto(proto.gamma());
  spec.beta = TensorFromProto(proto.beta());
  return spec;
}

PoolingType PoolingFromProto(v1::PoolingType pooling) {
  switch (pooling) {
    case v1::MAX:
      return PoolingType::kMax;
    case v1::AVERAGE:
      return PoolingType::kAverage;
    default:
      return PoolingType::kUnspecified;
  }
}

SignatureRole RoleFromProto(v1::SignatureTensor::Role role) {
  switch (role) {
    case v1::SignatureTensor::INPUT:
      return SignatureRole::kInput;
    case v1::SignatureTensor::LENGTHS:
      return SignatureRole::kLengths;
    case v1::SignatureTensor::INITIAL_H:
      return SignatureRole::kInitialH;
    case v1::SignatureTensor::INITIAL_C:
      return SignatureRole::kInitialC;
    case v1::SignatureTensor::OUTPUT:
      return SignatureRole::kOutput;
    case v1::SignatureTensor::FINAL_H:
      return SignatureRole::kFinalH;
    case v1::SignatureTensor::FINAL_C:
      return SignatureRole::kFinalC;
    default:
      return SignatureRole::kUnspecified;
  }
}

std::vector<SignatureTensor> SignatureTensorsFromProto(
    const google::protobuf::RepeatedPtrField<v1::SignatureTensor>& proto) {
  std::vector<SignatureTensor> tensors;
  for (const v1::SignatureTensor& t : proto) {
    tensors.push_back(SignatureTensor{.name = t.name(),
                                      .role = RoleFromProto(t.role()),
                                      .datatype = t.datatype(),
                                      .time_major = t.time_major()});
  }
  return tensors;
}

// The model's signature, present when the file gives a source or any
// tensor (proto3 cannot tell an empty message from an absent one).
std::optional<Signature> SignatureFromProto(const v1::Signature& proto) {
  if (proto.source().empty() && proto.inputs().empty() &&
      proto.outputs().empty()) {
    return std::nullopt;
  }
  return Signature{.source = proto.source(),
                   .inputs = SignatureTensorsFromProto(proto.inputs()),
                   .outputs = SignatureTensorsFromProto(proto.outputs())};
}

BidirectionalSpec BidirectionalFromProto(const v1::BidirectionalLayer& b) {
  BidirectionalSpec bidi;
  bidi.name = b.name();
  bidi.layer = RnnFromProto(b.layer());
  if (b.has_backward_weights()) {
    bidi.backward_weights = WeightsFromProto(b.backward_weights());
  }
  if (b.has_backward_layer()) {
    bidi.backward_layer = RnnFromProto(b.backward_layer());
  }
  bidi.merge_mode = b.merge_mode();
  bidi.masked_step_output =
      b.masked_step_output() == v1::MASKED_STEP_OUTPUT_STATE
          ? MaskedStepOutput::kState
          : MaskedStepOutput::kZeros;
  return bidi;
}

DenseSpec DenseFromProto(const v1::DenseLayer& d) {
  DenseSpec dense;
  dense.name = d.name();
  dense.units = d.units();
  if (d.has_activation()) dense.activation = d.activation();
  if (d.has_use_bias()) dense.use_bias = d.use_bias();
  dense.kernel = TensorFromProto(d.kernel());
  dense.bias = TensorFromProto(d.bias());
  return dense;
}

}  // namespace

Tensor TensorFromProto(const v1::Tensor& proto) {
  return Tensor{{proto.shape().begin(), proto.shape().end()},
                {proto.values().begin(), proto.values().end()}};
}

ModelSpec ModelSpecFromProto(const v1::Model& proto) {
  ModelSpec spec;
  spec.name = proto.name();
  spec.input_dim = proto.input_dim();
  for (const v1::Layer& layer : proto.layers()) {
    switch (layer.layer_case()) {
      case v1::Layer::kEmbedding: {
        const v1::EmbeddingLayer& e = layer.embedding();
        spec.layers.push_back(
            EmbeddingSpec{e.name(), e.input_dim(), e.output_dim(),
                          TensorFromProto(e.embeddings()), e.mask_zero()});
        break;
      }
      case v1::Layer::kBidirectional:
        spec.layers.push_back(BidirectionalFromProto(layer.bidirectional()));
        break;
      case v1::Layer::kDense:
        spec.layers.push_back(DenseFromProto(layer.dense()));
        break;
      case v1::Layer::kActivation:
        spec.layers.push_back(ActivationSpec{layer.activation().name(),
                                             layer.activation().activation()});
        break;
      case v1::Layer::kBatchNormalization:
        spec.layers.push_back(
            BatchNormalizationFromProto(layer.batch_normalization()));
        break;
      case v1::Layer::kLayerNormalization:
        spec.layers.push_back(
            LayerNormalizationFromProto(layer.layer_normalization()));
        break;
      case v1::Layer::kGlobalPooling:
        spec.layers.push_back(GlobalPoolingSpec{
            layer.global_pooling().name(),
            PoolingFromProto(layer.global_pooling().pooling())});
        break;
      case v1::Layer::kMasking:
        spec.layers.push_back(
            MaskingSpec{layer.masking().name(), layer.masking().mask_value()});
        break;
      case v1::Layer::LAYER_NOT_SET:
        spec.layers.push_back(std::monostate());
        break;
    }
  }
  spec.signature = SignatureFromProto(proto.signature());
  spec.declared_time_steps = proto.declared_time_steps();
  return spec;
}

absl::StatusOr<v1::Model> ReadModelProto(const std::string& path) {
  absl::StatusOr<std::string> read = ReadFile(path, "the model file");
  if (!read.ok()) return read.status();
  const std::string& content = *read;
  v1::Model proto;
  if (absl::EndsWith(path, ".pbtxt")) {
    if (absl::Status s = ParseTextProto(content, &proto); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          ": not a valid biserve.v1.Model in text format: ", s.message()));
    }
  } else if (absl::EndsWith(path, ".json")) {
    auto status = google::protobuf::util::JsonStringToMessage(content, &proto);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a valid biserve.v1.Model in JSON: ",
                       status.message().as_string()));
    }
  } else if (!proto.ParseFromString(content)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a valid binary biserve.v1.Model (", content.size(),
        " bytes; a corrupt or truncated file, or another format: text models "
        "need the .pbtxt extension)"));
  }
  return proto;
}

absl::StatusOr<std::shared_ptr<const Model>> LoadModelFile(
    const std::string& path, Precision precision) {
  absl::StatusOr<v1::Model> proto = ReadModelProto(path);
  if (!proto.ok()) return proto.status();
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(ModelSpecFromProto(*proto), precision);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat(path, ": ", model.status().message()));
  }
  return model;
}

}  // namespace biserve
