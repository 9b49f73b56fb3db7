// OnnxNetwork: what the importer found in an ONNX graph, in the terms of a
// biserve model: an optional embedding, a stack of bidirectional recurrent
// nodes, dense heads, and which graph input and output plays which role
// (the model's Signature). ReadOnnxNetwork (onnx_graph_reader.h) fills it;
// onnx_importer.cc turns it into a biserve.v1.Model.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "biserve/v1/model.pb.h"
#include "importers/onnx_tensor.h"
#include "onnx/onnx_pb.h"

namespace biserve::onnx_import {

// One bidirectional LSTM, GRU or RNN node and its weights, as ONNX lays
// them out ([num_directions, gates * hidden, input] and so on).
struct OnnxRecurrentNode {
  const onnx::NodeProto* node = nullptr;
  int hidden_size = 0;
  ConstTensor w;                     // [2, G * hidden, input_size]
  ConstTensor r;                     // [2, G * hidden, hidden]
  std::optional<ConstTensor> b;      // [2, 2 * G * hidden]; absent: no bias
  bool linear_before_reset = false;  // GRU
  std::string activation = "tanh";   // RNN: "tanh" or "relu"
};

// A Linear layer: MatMul (+ Add), or Gemm, then an optional activation.
struct OnnxDense {
  std::string name;                   // the MatMul's or Gemm's node name
  ConstTensor kernel;                 // [input_size, units], Keras' layout
  std::optional<ConstTensor> bias;    // [units]
  std::string activation = "linear";  // a Keras activation name
};

struct OnnxSignatureTensor {
  std::string name;
  v1::SignatureTensor::Role role = v1::SignatureTensor::ROLE_UNSPECIFIED;
  std::string datatype;  // "FP32", "INT64", "INT32"
  bool time_major = false;
};

struct OnnxNetwork {
  std::optional<ConstTensor> embedding;  // [vocabulary, dim]
  int input_dim = 0;                     // features; 0 with an embedding
  std::vector<OnnxRecurrentNode> layers;
  // Whether the last layer's output is a sequence; false when the heads
  // read cat(h_n[-2], h_n[-1]) (Keras: return_sequences = false).
  bool returns_sequences = true;
  std::vector<OnnxDense> heads;
  std::vector<OnnxSignatureTensor> inputs;
  std::vector<OnnxSignatureTensor> outputs;
};

}  // namespace biserve::onnx_import
