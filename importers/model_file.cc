#include "importers/model_file.h"

#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "importers/isolated_import.h"
#include "importers/keras_file_importer.h"
#include "importers/onnx_importer.h"
#include "proto/model_codec.h"

namespace biserve {

const std::vector<std::string>& RepositoryModelFileNames() {
  static const std::vector<std::string>* const names =
      new std::vector<std::string>{"model.pb", "model.pbtxt", "model.onnx",
                                   "model.keras", "model.h5"};
  return *names;
}

namespace {

// Whether the file at `path` starts with HDF5's or a zip's signature.
bool HasKerasSignature(const std::string& path) {
  char head[8] = {};
  std::ifstream file(path, std::ios::binary);
  file.read(head, sizeof(head));
  const absl::string_view bytes(head, static_cast<size_t>(file.gcount()));
  return absl::StartsWith(bytes, "\x89HDF\r\n\x1a\n") ||
         absl::StartsWith(bytes, "PK\x03\x04");
}

}  // namespace

ModelFileFormat ModelFileFormatOf(const std::string& path) {
  // Keras' files are known by their content: extensions are too often
  // wrong (an HDF5 file named .keras).
  if (absl::EndsWithIgnoreCase(path, ".keras") ||
      absl::EndsWithIgnoreCase(path, ".h5") || HasKerasSignature(path)) {
    return ModelFileFormat::kKeras;
  }
  if (absl::EndsWithIgnoreCase(path, ".onnx")) return ModelFileFormat::kOnnx;
  return ModelFileFormat::kBiserve;
}

std::string ModelNameFromPath(const std::string& path) {
  const std::filesystem::path version =
      std::filesystem::path(path).parent_path();
  const std::string v = version.filename().string();
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos) {
    return "";
  }
  return version.parent_path().filename().string();
}

absl::StatusOr<v1::Model> ReadAnyModelFile(const std::string& path) {
  switch (ModelFileFormatOf(path)) {
    case ModelFileFormat::kOnnx: {
      OnnxImportOptions options;
      options.model_name = ModelNameFromPath(path);
      return ImportOnnxFile(path, options);
    }
    case ModelFileFormat::kKeras: {
      KerasImportOptions options;
      options.model_name = ModelNameFromPath(path);
      // In a process of its own: libhdf5 can crash, allocate without bound
      // or loop forever on a damaged file (isolated_import.h).
      return ImportKerasFileIsolated(path, options);
    }
    case ModelFileFormat::kBiserve:
      return ReadModelProto(path);
  }
  return absl::InternalError(absl::StrCat(path, ": unknown model format"));
}

absl::StatusOr<std::shared_ptr<const Model>> LoadAnyModelFile(
    const std::string& path, Precision precision) {
  // Our own files keep LoadModelFile's exact behaviour and messages.
  if (ModelFileFormatOf(path) == ModelFileFormat::kBiserve) {
    return LoadModelFile(path, precision);
  }
  absl::StatusOr<v1::Model> proto = ReadAnyModelFile(path);
  if (!proto.ok()) return proto.status();
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(ModelSpecFromProto(*proto), precision);
  if (!model.ok()) {
    // The importer promises a model that validates: this is its bug, but
    // the user still learns which file and why.
    return absl::Status(model.status().code(),
                        absl::StrCat(path, ": ", model.status().message()));
  }
  return model;
}

}  // namespace biserve
