#include "proto/reply_size.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"

namespace biserve {
namespace {

// Field numbers are below 16 throughout: every tag is one byte.
constexpr int64_t kTagBytes = 1;
constexpr int64_t kFloatBytes = 4;

int64_t VarintBytes(int64_t value) {
  return static_cast<int64_t>(
      google::protobuf::io::CodedOutputStream::VarintSize64(
          static_cast<uint64_t>(value)));
}

// A length-delimited field (message, string, packed values) of `bytes`.
int64_t Delimited(int64_t bytes) {
  return kTagBytes + VarintBytes(bytes) + bytes;
}

// A proto3 string field: absent when empty.
int64_t StringField(absl::string_view value) {
  return value.empty() ? 0 : Delimited(static_cast<int64_t>(value.size()));
}

// A packed repeated int64 field: absent when empty.
int64_t PackedInt64s(const std::vector<int64_t>& values) {
  int64_t bytes = 0;
  for (int64_t v : values) bytes += VarintBytes(v);
  return values.empty() ? 0 : Delimited(bytes);
}

// A packed repeated float field of `count` values: absent when empty.
int64_t PackedFloats(int64_t count) {
  return count == 0 ? 0 : Delimited(count * kFloatBytes);
}

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t product = 1;
  for (int64_t d : shape) product *= d;
  return product;
}

// A biserve.v1.Tensor of `shape`, as a field of its parent.
int64_t TensorField(const std::vector<int64_t>& shape) {
  return Delimited(PackedInt64s(shape) + PackedFloats(Product(shape)));
}

// [length, width] with a time axis, else [width].
std::vector<int64_t> SequenceShape(bool sequences, int64_t length,
                                   int64_t width) {
  return sequences ? std::vector<int64_t>{length, width}
                   : std::vector<int64_t>{width};
}

// One SequenceOutput of a sequence of `length` steps, as a field.
int64_t SequenceOutputField(const Model& model, const EvalOptions& options,
                            int64_t length) {
  const BidirectionalLayer& last =
      model.bidirectional(model.last_bidirectional());
  int64_t bytes = 0;
  if (options.output && model.output_size() > 0) {
    bytes += TensorField(
        SequenceShape(model.returns_sequences(), length, model.output_size()));
  }
  if (options.directions || last.merge_mode == MergeMode::kNone) {
    bytes += TensorField(
        SequenceShape(last.return_sequences, length, last.forward.units));
    bytes += TensorField(
        SequenceShape(last.return_sequences, length, last.backward.units));
  }
  if (options.states) {
    for (const StackLayer& layer : model.layers()) {
      const auto* bidi = std::get_if<BidirectionalLayer>(&layer);
      if (bidi == nullptr) continue;
      int64_t layer_bytes = StringField(bidi->name);
      for (const StateSpec& state : bidi->states) {
        layer_bytes += TensorField({state.units});
      }
      bytes += Delimited(layer_bytes);
    }
  }
  return Delimited(bytes);
}

// An int64 proto3 field: absent when 0.
int64_t Int64Field(int64_t value) {
  return value == 0 ? 0 : kTagBytes + VarintBytes(value);
}

}  // namespace

int64_t PredictResponseBytes(const Model& model, absl::string_view model_name,
                             int64_t version, absl::string_view request_id,
                             const EvalOptions& options,
                             absl::Span<const SequenceInput> sequences) {
  int64_t bytes =
      StringField(request_id) + StringField(model_name) + Int64Field(version);
  for (const SequenceInput& s : sequences) {
    bytes += SequenceOutputField(model, options, s.length);
  }
  return bytes;
}

int64_t InferResponseBytes(const OpenInferCall& call, const Model& model,
                           absl::string_view model_name, int64_t version) {
  int64_t bytes = StringField(model_name) + StringField(absl::StrCat(version)) +
                  StringField(call.request.request_id());
  for (const std::string& name : call.outputs) {
    const std::vector<int64_t> shape = InferOutputShape(call, model, name);
    const int64_t values = shape.empty() ? 0 : Product(shape);
    int64_t tensor =
        StringField(name) + StringField("FP32") + PackedInt64s(shape);
    if (call.raw_outputs) {
      bytes += Delimited(values * kFloatBytes);  // raw_output_contents
    } else {
      tensor += Delimited(PackedFloats(values));  // contents, always set
    }
    bytes += Delimited(tensor);
  }
  return bytes;
}

absl::Status CheckReplyBytes(int64_t bytes, int64_t max_bytes) {
  if (max_bytes <= 0 || bytes <= max_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the reply would be ", bytes,
      " bytes, more than the server's --max_message_bytes (", max_bytes,
      " bytes), so it was not computed; send fewer or shorter sequences per "
      "request (or ask for fewer outputs), or raise --max_message_bytes on "
      "the server and the client"));
}

}  // namespace biserve
