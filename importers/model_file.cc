#include "importers/model_file.h"

#include <filesystem>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "importers/onnx_importer.h"
#include "proto/model_codec.h"

namespace biserve {

const std::vector<std::string>& RepositoryModelFileNames() {
  static const std::vector<std::string>* const names =
      new std::vector<std::string>{"model.pb", "model.pbtxt", "model.onnx"};
  return *names;
}

ModelFileFormat ModelFileFormatOf(const std::string& path) {
  // Keras' model.keras (zip) and model.h5 (HDF5) will be recognised by their
  // signatures here: their extensions are too often renamed.
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
    case ModelFileFormat::kBiserve:
      return ReadModelProto(path);
  }
  return absl::InternalError(absl::StrCat(path, ": unknown model format"));
}

absl::StatusOr<std::shared_ptr<const Model>> LoadAnyModelFile(
    const std::string& path) {
  // Our own files keep LoadModelFile's exact behaviour and messages.
  if (ModelFileFormatOf(path) == ModelFileFormat::kBiserve) {
    return LoadModelFile(path);
  }
  absl::StatusOr<v1::Model> proto = ReadAnyModelFile(path);
  if (!proto.ok()) return proto.status();
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(ModelSpecFromProto(*proto));
  if (!model.ok()) {
    // The importer promises a model that validates: this is its bug, but
    // the user still learns which file and why.
    return absl::Status(model.status().code(),
                        absl::StrCat(path, ": ", model.status().message()));
  }
  return model;
}

}  // namespace biserve
