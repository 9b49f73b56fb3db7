#include "importers/onnx_importer.h"

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "importers/onnx_graph_reader.h"
#include "importers/onnx_network.h"
#include "importers/onnx_tensor.h"
#include "onnx/onnx_pb.h"
#include "proto/read_file.h"

namespace biserve {
namespace {

using onnx_import::ConstTensor;
using onnx_import::OnnxDense;
using onnx_import::OnnxNetwork;
using onnx_import::OnnxRecurrentNode;

// For each Keras gate, the ONNX gate holding it. LSTM: ONNX i, o, f, c;
// Keras i, f, c, o. GRU: both z, r, h. RNN: one gate.
std::vector<int> OnnxGateOfKerasGate(const std::string& op) {
  if (op == "LSTM") return {0, 2, 3, 1};
  if (op == "GRU") return {0, 1, 2};
  return {0};
}

v1::CellType CellOf(const std::string& op) {
  if (op == "LSTM") return v1::LSTM;
  if (op == "GRU") return v1::GRU;
  return v1::SIMPLE_RNN;
}

void SetTensor(std::vector<int64_t> shape, std::vector<float> values,
               v1::Tensor* out) {
  for (int64_t d : shape) out->add_shape(d);
  out->mutable_values()->Add(values.begin(), values.end());
}

// ONNX keeps a direction's W as [G * H, input] with gates in its own order;
// Keras' kernel is [input, G * H] in Keras' order. The same for R.
std::vector<float> KerasKernel(const ConstTensor& w, int direction,
                               const std::vector<int>& gates, int64_t hidden) {
  const int64_t rows = w.shape[1];  // G * H
  const int64_t cols = w.shape[2];  // input (or hidden for R)
  const float* base = w.floats.data() + direction * rows * cols;
  std::vector<float> out(rows * cols);
  for (size_t g = 0; g < gates.size(); ++g) {
    for (int64_t j = 0; j < hidden; ++j) {
      const float* row = base + (gates[g] * hidden + j) * cols;
      for (int64_t i = 0; i < cols; ++i) {
        out[i * rows + g * hidden + j] = row[i];
      }
    }
  }
  return out;
}

// One half ([G * H]: 0 the input bias Wb, 1 the recurrent bias Rb) of a
// direction's B, in Keras' gate order.
std::vector<float> KerasBias(const ConstTensor& b, int direction, int half,
                             const std::vector<int>& gates, int64_t hidden) {
  const int64_t width = static_cast<int64_t>(gates.size()) * hidden;
  const float* base = b.floats.data() + direction * 2 * width + half * width;
  std::vector<float> out(width);
  for (size_t g = 0; g < gates.size(); ++g) {
    for (int64_t j = 0; j < hidden; ++j) {
      out[g * hidden + j] = base[gates[g] * hidden + j];
    }
  }
  return out;
}

// ONNX adds two bias vectors (Wb, Rb); Keras has one, except a GRU with
// reset_after (linear_before_reset = 1), whose recurrent bias sits inside
// the reset gate's product: [2, 3H] = input row, recurrent row.
void SetBias(const OnnxRecurrentNode& layer, int direction,
             const std::vector<int>& gates, v1::Tensor* out) {
  const int64_t hidden = layer.hidden_size;
  std::vector<float> input = KerasBias(*layer.b, direction, 0, gates, hidden);
  std::vector<float> recurrent =
      KerasBias(*layer.b, direction, 1, gates, hidden);
  const int64_t width = static_cast<int64_t>(input.size());
  if (layer.node->op_type() == "GRU" && layer.linear_before_reset) {
    input.insert(input.end(), recurrent.begin(), recurrent.end());
    SetTensor({2, width}, std::move(input), out);
    return;
  }
  for (int64_t i = 0; i < width; ++i) input[i] += recurrent[i];
  SetTensor({width}, std::move(input), out);
}

void SetWeights(const OnnxRecurrentNode& layer, int direction,
                v1::RnnWeights* out) {
  const std::string& op = layer.node->op_type();
  const std::vector<int> gates = OnnxGateOfKerasGate(op);
  const int64_t hidden = layer.hidden_size;
  const int64_t width = static_cast<int64_t>(gates.size()) * hidden;
  SetTensor({layer.w.shape[2], width},
            KerasKernel(layer.w, direction, gates, hidden),
            out->mutable_kernel());
  SetTensor({hidden, width}, KerasKernel(layer.r, direction, gates, hidden),
            out->mutable_recurrent_kernel());
  if (layer.b.has_value())
    SetBias(layer, direction, gates, out->mutable_bias());
}

std::string KerasName(const std::string& base, int index) {
  return index == 0 ? base : absl::StrCat(base, "_", index);
}

void AddBidirectional(const OnnxRecurrentNode& layer, int index,
                      bool return_sequences, v1::Model* model) {
  const std::string& op = layer.node->op_type();
  v1::BidirectionalLayer* b = model->add_layers()->mutable_bidirectional();
  b->set_name(KerasName("bidirectional", index));
  b->set_merge_mode("concat");
  v1::RnnLayer* rnn = b->mutable_layer();
  rnn->set_name(KerasName(op == "LSTM"  ? "lstm"
                          : op == "GRU" ? "gru"
                                        : "simple_rnn",
                          index));
  rnn->set_cell(CellOf(op));
  rnn->set_units(layer.hidden_size);
  rnn->set_activation(layer.activation);
  rnn->set_use_bias(layer.b.has_value());
  if (op == "GRU") rnn->set_reset_after(layer.linear_before_reset);
  rnn->set_return_sequences(return_sequences);
  SetWeights(layer, 0, rnn->mutable_weights());
  SetWeights(layer, 1, b->mutable_backward_weights());
}

void AddDense(const OnnxDense& dense, int index, v1::Model* model) {
  v1::DenseLayer* d = model->add_layers()->mutable_dense();
  d->set_name(KerasName("dense", index));
  d->set_units(static_cast<int32_t>(dense.kernel.shape[1]));
  d->set_activation(dense.activation);
  d->set_use_bias(dense.bias.has_value());
  SetTensor(dense.kernel.shape, dense.kernel.floats, d->mutable_kernel());
  if (dense.bias.has_value()) {
    SetTensor(dense.bias->shape, dense.bias->floats, d->mutable_bias());
  }
}

void AddSignature(const OnnxNetwork& network, v1::Model* model) {
  v1::Signature* signature = model->mutable_signature();
  signature->set_source("onnx");
  const auto add = [](const onnx_import::OnnxSignatureTensor& from,
                      v1::SignatureTensor* to) {
    to->set_name(from.name);
    to->set_role(from.role);
    to->set_datatype(from.datatype);
    to->set_time_major(from.time_major);
  };
  for (const auto& input : network.inputs) add(input, signature->add_inputs());
  for (const auto& output : network.outputs) {
    add(output, signature->add_outputs());
  }
}

v1::Model ToModel(const OnnxNetwork& network, const std::string& name) {
  v1::Model model;
  model.set_name(name);
  model.set_input_dim(network.input_dim);
  if (network.embedding.has_value()) {
    v1::EmbeddingLayer* e = model.add_layers()->mutable_embedding();
    e->set_name("embedding");
    e->set_input_dim(static_cast<int32_t>(network.embedding->shape[0]));
    e->set_output_dim(static_cast<int32_t>(network.embedding->shape[1]));
    SetTensor(network.embedding->shape, network.embedding->floats,
              e->mutable_embeddings());
  }
  const int layers = static_cast<int>(network.layers.size());
  for (int k = 0; k < layers; ++k) {
    AddBidirectional(network.layers[k], k,
                     k + 1 < layers || network.returns_sequences, &model);
  }
  for (size_t k = 0; k < network.heads.size(); ++k) {
    AddDense(network.heads[k], static_cast<int>(k), &model);
  }
  AddSignature(network, &model);
  return model;
}

int64_t DefaultOpset(const onnx::ModelProto& model) {
  for (const onnx::OperatorSetIdProto& opset : model.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") {
      return opset.version();
    }
  }
  return 0;
}

}  // namespace

absl::StatusOr<v1::Model> ImportOnnxBytes(absl::string_view bytes,
                                          const OnnxImportOptions& options) {
  onnx::ModelProto model;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        "not an ONNX model: the bytes do not parse as an ONNX ModelProto");
  }
  if (!model.has_graph() || model.graph().node_size() == 0) {
    return absl::InvalidArgumentError(
        "not an ONNX model: it has no graph (an empty or truncated file?)");
  }
  const int64_t opset = DefaultOpset(model);
  if (opset < 9) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ONNX opset ", opset,
        " is too old; export with opset_version between 11 and 17"));
  }
  absl::StatusOr<OnnxNetwork> network =
      onnx_import::ReadOnnxNetwork(model.graph(), opset);
  if (!network.ok()) return network.status();
  std::string name = options.model_name;
  if (name.empty()) name = model.graph().name();
  if (name.empty()) name = "model";
  return ToModel(*network, name);
}

absl::StatusOr<v1::Model> ImportOnnxFile(const std::string& path,
                                         const OnnxImportOptions& options) {
  absl::StatusOr<std::string> bytes = ReadFile(path, "the ONNX model file");
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<v1::Model> model = ImportOnnxBytes(*bytes, options);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat(path, ": ", model.status().message()));
  }
  return model;
}

}  // namespace biserve
