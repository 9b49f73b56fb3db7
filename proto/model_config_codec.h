// ReadModelConfig: models/<name>/config.pbtxt (biserve/v1/config.proto) into
// a core ModelConfig.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "biserve/v1/config.pb.h"
#include "core/model/model_config.h"

namespace biserve {

// INVALID_ARGUMENT naming the field for out-of-range values.
absl::StatusOr<ModelConfig> ModelConfigFromProto(const v1::ModelConfig& proto);

// Reads and parses a text-format config; messages start with the path and
// give the parser's line and column.
absl::StatusOr<ModelConfig> ReadModelConfig(const std::string& path);

}  // namespace biserve
