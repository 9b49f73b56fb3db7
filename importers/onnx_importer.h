// ImportOnnxModel: a PyTorch bidirectional RNN exported with
// torch.onnx.export (an ONNX graph around bidirectional LSTM, GRU or RNN
// nodes) as a biserve model with Keras semantics, plus the graph's own input
// and output names and layouts as the model's Signature (model.proto), so
// that clients written for ONNX Runtime work unchanged.
//
// The graph is read by abstract interpretation: every value is a constant,
// a shape built from the batch and time sizes, or a known view of the
// request's data (the input, a layer's sequence output, final states, the
// batch sorted by length and back). What is not one of the patterns
// docs/onnx.md lists is refused, naming the node (op type and name).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "biserve/v1/model.pb.h"

namespace biserve {

struct OnnxImportOptions {
  // The model's name; empty: the graph's name, else "model".
  std::string model_name;
};

// Reads the ONNX file at `path` (ONNX's protobuf ModelProto, as
// torch.onnx.export writes it). NOT_FOUND when it cannot be read,
// INVALID_ARGUMENT when it does not parse or is not a supported model; the
// message starts with the path.
absl::StatusOr<v1::Model> ImportOnnxFile(const std::string& path,
                                         const OnnxImportOptions& options);

// The same for a serialized ModelProto already in memory (no path prefix).
absl::StatusOr<v1::Model> ImportOnnxBytes(absl::string_view bytes,
                                          const OnnxImportOptions& options);

}  // namespace biserve
