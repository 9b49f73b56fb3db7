#include "importers/onnx_importer.h"

#include "absl/status/status.h"
#include "onnx/onnx_pb.h"

namespace biserve {

absl::StatusOr<v1::Model> ImportOnnxBytes(absl::string_view bytes,
                                          const OnnxImportOptions& options) {
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("not an ONNX model (ModelProto)");
  }
  return absl::UnimplementedError("ONNX import is not written yet");
}

absl::StatusOr<v1::Model> ImportOnnxFile(const std::string& path,
                                         const OnnxImportOptions& options) {
  return absl::UnimplementedError("ONNX import is not written yet");
}

}  // namespace biserve
