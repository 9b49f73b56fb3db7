// The seam between the model schema (biserve/v1/model.proto) and core/: it
// turns messages into core types, and model files into validated Models.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "biserve/v1/model.pb.h"
#include "core/model/model.h"
#include "core/model/model_spec.h"

namespace biserve {

// Copies a tensor message's shape and values.
Tensor TensorFromProto(const v1::Tensor& proto);

// Copies `proto` field for field; validation is Model::Create's job.
ModelSpec ModelSpecFromProto(const v1::Model& proto);

// Reads a model file: binary `Model` (.pb, or any other extension), text
// format (.pbtxt) or proto3 JSON (.json). NOT_FOUND if the file cannot be
// read, INVALID_ARGUMENT if it does not parse (with the parser's line and
// column for text) or does not validate.
absl::StatusOr<v1::Model> ReadModelProto(const std::string& path);

// ReadModelProto, then Model::Create in `precision` (the one asked for);
// messages start with the path.
absl::StatusOr<std::shared_ptr<const Model>> LoadModelFile(
    const std::string& path, Precision precision = Precision::kFp32);

}  // namespace biserve
