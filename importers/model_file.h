// LoadAnyModelFile: the one place that decides how a model file is read,
// whatever framework wrote it. The server's repository, biserve_eval and
// the fuzzers load through it, so a format added here (issue 18:
// model.keras and model.h5) is served, evaluated and listed in messages
// at once.
//
//   model.pb, model.pbtxt, *.json   biserve's own schema (LoadModelFile)
//   *.onnx                          ImportOnnxFile, then Model::Create
//   HDF5 or zip content, *.keras, *.h5   ImportKerasFile in a process of its
//                                   own (isolated_import.h), then
//                                   Model::Create
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "biserve/v1/model.pb.h"
#include "core/model/model.h"

namespace biserve {

// The file names a repository version folder (<model>/<version>/) may hold,
// in the order messages list them. A folder holding more than one of them
// is refused: which one was meant is not guessed.
const std::vector<std::string>& RepositoryModelFileNames();

enum class ModelFileFormat {
  kBiserve,  // biserve.v1.Model: binary, text (.pbtxt) or JSON (.json)
  kOnnx,     // an ONNX ModelProto, as torch.onnx.export writes it
  kKeras,    // Keras' own file: a .keras zip or a legacy HDF5 .h5
};

// The format of the file at `path`: Keras when its first bytes are HDF5's
// or a zip's signature (real projects commit HDF5 files named .keras) or
// its name ends in .keras or .h5 (so that a Git LFS pointer named so is
// reported as one); else ".onnx" is ONNX, anything else biserve's own.
ModelFileFormat ModelFileFormatOf(const std::string& path);

// The model a repository path names: "<name>" for
// .../<name>/<version>/<file> with a numeric version folder, else "".
std::string ModelNameFromPath(const std::string& path);

// Reads the model file at `path` in its format (ModelFileFormatOf) as our
// schema, not yet validated. An imported model is named after its
// repository folder (ModelNameFromPath) when the path has that shape.
// NOT_FOUND if it cannot be read, INVALID_ARGUMENT if it does not parse or
// is not a supported model; messages start with the path.
absl::StatusOr<v1::Model> ReadAnyModelFile(const std::string& path);

// ReadAnyModelFile, then Model::Create in `precision` (the one asked for);
// messages start with the path.
absl::StatusOr<std::shared_ptr<const Model>> LoadAnyModelFile(
    const std::string& path, Precision precision = Precision::kFp32);

}  // namespace biserve
