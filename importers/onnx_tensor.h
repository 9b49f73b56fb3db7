// Constants of an ONNX graph (initializers, Constant nodes) and node
// attributes, read from ONNX's protobuf messages into plain values the
// importer can compute with. Sizes are checked against the data before
// anything is allocated: a hostile file's dims never size a buffer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "onnx/onnx_pb.h"

namespace biserve::onnx_import {

// A tensor known when the file is read: float32 (weights) or integer
// (shapes, indices; int32 and int64 both read as int64).
struct ConstTensor {
  bool is_float = false;
  std::vector<int64_t> shape;
  std::vector<float> floats;  // is_float
  std::vector<int64_t> ints;  // !is_float
  int64_t size() const {
    return is_float ? static_cast<int64_t>(floats.size())
                    : static_cast<int64_t>(ints.size());
  }
  bool AllZero() const;
};

// Reads an initializer or a Constant's tensor. INVALID_ARGUMENT for
// types other than float32, int32 and int64, external data, and data whose
// size does not match its dims.
absl::StatusOr<ConstTensor> ReadTensor(const onnx::TensorProto& tensor);

// The value of a Constant node (its value, value_float(s) or value_int(s)
// attribute).
absl::StatusOr<ConstTensor> ReadConstantNode(const onnx::NodeProto& node);

// "LSTM '/rnn/LSTM'": how errors name a node.
std::string NodeName(const onnx::NodeProto& node);

// Attribute lookups; absent gives nullopt (or the default).
const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& node,
                                          absl::string_view name);
int64_t IntAttribute(const onnx::NodeProto& node, absl::string_view name,
                     int64_t default_value);
std::optional<float> FloatAttribute(const onnx::NodeProto& node,
                                    absl::string_view name);
std::optional<std::vector<int64_t>> IntsAttribute(const onnx::NodeProto& node,
                                                  absl::string_view name);
std::optional<std::string> StringAttribute(const onnx::NodeProto& node,
                                           absl::string_view name);
std::vector<std::string> StringsAttribute(const onnx::NodeProto& node,
                                          absl::string_view name);

}  // namespace biserve::onnx_import
