#include "importers/onnx_tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace biserve::onnx_import {
namespace {

// Larger than any model biserve serves; a bound on what dims may claim.
constexpr int64_t kMaxElements = int64_t{1} << 31;

absl::StatusOr<int64_t> ElementCount(const onnx::TensorProto& tensor) {
  int64_t count = 1;
  for (int64_t dim : tensor.dims()) {
    if (dim < 0 || (dim > 0 && count > kMaxElements / dim)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", tensor.name(), "' has invalid or too large dims"));
    }
    count *= dim;
  }
  return count;
}

template <typename T>
absl::Status ReadRaw(const onnx::TensorProto& tensor, int64_t count,
                     std::vector<T>& out) {
  const std::string& raw = tensor.raw_data();
  if (raw.size() != static_cast<size_t>(count) * sizeof(T)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", tensor.name(), "' holds ", raw.size(),
                     " bytes where its dims need ", count * sizeof(T)));
  }
  out.resize(count);
  if (count > 0) std::memcpy(out.data(), raw.data(), raw.size());
  return absl::OkStatus();
}

template <typename Field, typename T>
absl::Status ReadField(const onnx::TensorProto& tensor, const Field& field,
                       int64_t count, std::vector<T>& out) {
  if (field.size() != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", tensor.name(), "' holds ", field.size(),
                     " values where its dims need ", count));
  }
  out.assign(field.begin(), field.end());
  return absl::OkStatus();
}

}  // namespace

bool ConstTensor::AllZero() const {
  return is_float ? std::all_of(floats.begin(), floats.end(),
                                [](float v) { return v == 0.0f; })
                  : std::all_of(ints.begin(), ints.end(),
                                [](int64_t v) { return v == 0; });
}

absl::StatusOr<ConstTensor> ReadTensor(const onnx::TensorProto& tensor) {
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", tensor.name(),
                     "' keeps its data in an external file; save the model "
                     "with its weights inside the .onnx file"));
  }
  absl::StatusOr<int64_t> count = ElementCount(tensor);
  if (!count.ok()) return count.status();
  ConstTensor out;
  out.shape.assign(tensor.dims().begin(), tensor.dims().end());
  const bool raw = tensor.has_raw_data();
  absl::Status status;
  switch (tensor.data_type()) {
    case onnx::TensorProto::FLOAT:
      out.is_float = true;
      status = raw ? ReadRaw(tensor, *count, out.floats)
                   : ReadField(tensor, tensor.float_data(), *count, out.floats);
      break;
    case onnx::TensorProto::INT64:
      status = raw ? ReadRaw(tensor, *count, out.ints)
                   : ReadField(tensor, tensor.int64_data(), *count, out.ints);
      break;
    case onnx::TensorProto::INT32: {
      std::vector<int32_t> ints;
      status = raw ? ReadRaw(tensor, *count, ints)
                   : ReadField(tensor, tensor.int32_data(), *count, ints);
      out.ints.assign(ints.begin(), ints.end());
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", tensor.name(), "' has data type ",
          onnx::TensorProto::DataType_Name(
              static_cast<onnx::TensorProto::DataType>(tensor.data_type())),
          "; biserve reads float32, int32 and int64"));
  }
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<ConstTensor> ReadConstantNode(const onnx::NodeProto& node) {
  for (const onnx::AttributeProto& attribute : node.attribute()) {
    ConstTensor out;
    if (attribute.name() == "value") return ReadTensor(attribute.t());
    if (attribute.name() == "value_float") {
      out.is_float = true;
      out.floats = {attribute.f()};
      return out;
    }
    if (attribute.name() == "value_floats") {
      out.is_float = true;
      out.floats.assign(attribute.floats().begin(), attribute.floats().end());
      out.shape = {static_cast<int64_t>(out.floats.size())};
      return out;
    }
    if (attribute.name() == "value_int") {
      out.ints = {attribute.i()};
      return out;
    }
    if (attribute.name() == "value_ints") {
      out.ints.assign(attribute.ints().begin(), attribute.ints().end());
      out.shape = {static_cast<int64_t>(out.ints.size())};
      return out;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat(NodeName(node), ": a Constant with no value biserve reads"));
}

std::string NodeName(const onnx::NodeProto& node) {
  return absl::StrCat(node.op_type(), " '", node.name(), "'");
}

const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& node,
                                          absl::string_view name) {
  for (const onnx::AttributeProto& attribute : node.attribute()) {
    if (attribute.name() == name) return &attribute;
  }
  return nullptr;
}

int64_t IntAttribute(const onnx::NodeProto& node, absl::string_view name,
                     int64_t default_value) {
  const onnx::AttributeProto* attribute = FindAttribute(node, name);
  return attribute != nullptr ? attribute->i() : default_value;
}

std::optional<float> FloatAttribute(const onnx::NodeProto& node,
                                    absl::string_view name) {
  const onnx::AttributeProto* attribute = FindAttribute(node, name);
  if (attribute == nullptr) return std::nullopt;
  return attribute->f();
}

std::optional<std::vector<int64_t>> IntsAttribute(const onnx::NodeProto& node,
                                                  absl::string_view name) {
  const onnx::AttributeProto* attribute = FindAttribute(node, name);
  if (attribute == nullptr) return std::nullopt;
  return std::vector<int64_t>(attribute->ints().begin(),
                              attribute->ints().end());
}

std::optional<std::string> StringAttribute(const onnx::NodeProto& node,
                                           absl::string_view name) {
  const onnx::AttributeProto* attribute = FindAttribute(node, name);
  if (attribute == nullptr) return std::nullopt;
  return attribute->s();
}

std::vector<std::string> StringsAttribute(const onnx::NodeProto& node,
                                          absl::string_view name) {
  const onnx::AttributeProto* attribute = FindAttribute(node, name);
  if (attribute == nullptr) return {};
  return std::vector<std::string>(attribute->strings().begin(),
                                  attribute->strings().end());
}

}  // namespace biserve::onnx_import
