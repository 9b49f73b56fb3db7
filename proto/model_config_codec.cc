#include "proto/model_config_codec.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "proto/parse_text_proto.h"
#include "proto/read_file.h"

namespace biserve {

namespace {

// nullopt for PRECISION_UNSPECIFIED (the server's --precision applies).
absl::StatusOr<std::optional<Precision>> PrecisionFromProto(
    v1::Precision precision) {
  switch (precision) {
    case v1::PRECISION_UNSPECIFIED:
      return std::nullopt;
    case v1::FP32:
      return Precision::kFp32;
    case v1::BF16:
      return Precision::kBf16;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "precision: unknown value ", precision, "; expected FP32 or BF16"));
  }
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfigFromProto(const v1::ModelConfig& proto) {
  ModelConfig config;
  const v1::VersionPolicy& policy = proto.version_policy();
  switch (policy.policy_case()) {
    case v1::VersionPolicy::kLatest:
      config.version_policy.kind = VersionPolicy::Kind::kLatest;
      // uint32 on the wire: clamped so that a huge count cannot wrap to a
      // negative int (which Select would read as 1).
      config.version_policy.num_versions = static_cast<int>(
          std::clamp<uint32_t>(policy.latest().num_versions(), 1,
                               std::numeric_limits<int>::max()));
      break;
    case v1::VersionPolicy::kAll:
      config.version_policy.kind = VersionPolicy::Kind::kAll;
      break;
    case v1::VersionPolicy::kSpecific:
      if (policy.specific().versions().empty()) {
        return absl::InvalidArgumentError(
            "version_policy.specific.versions is empty; list the versions to "
            "serve");
      }
      for (int64_t v : policy.specific().versions()) {
        if (v < 1) {
          return absl::InvalidArgumentError(absl::StrCat(
              "version_policy.specific.versions: versions are at least 1; "
              "got ",
              v));
        }
        config.version_policy.versions.push_back(v);
      }
      config.version_policy.kind = VersionPolicy::Kind::kSpecific;
      break;
    case v1::VersionPolicy::POLICY_NOT_SET:
      break;
  }
  const v1::BatchingConfig& batching = proto.batching();
  BatchingOverrides& o = config.batching;
  if (batching.has_max_batch_size())
    o.max_batch_size = batching.max_batch_size();
  if (batching.has_max_batch_steps()) {
    o.max_batch_steps = batching.max_batch_steps();
  }
  if (batching.has_max_queue_delay_us()) {
    o.max_queue_delay_us = batching.max_queue_delay_us();
  }
  if (batching.has_max_queue_size())
    o.max_queue_size = batching.max_queue_size();
  // Check the overrides on any valid base: each value on its own.
  if (absl::Status s = o.ApplyTo(BatchingOptions()).Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("batching.", s.message()));
  }
  absl::StatusOr<std::optional<Precision>> precision =
      PrecisionFromProto(proto.precision());
  if (!precision.ok()) return precision.status();
  config.precision = *precision;
  return config;
}

absl::StatusOr<ModelConfig> ReadModelConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path, "the model config");
  if (!text.ok()) return text.status();
  v1::ModelConfig proto;
  if (absl::Status s = ParseTextProto(*text, &proto); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        ": not a valid biserve.v1.ModelConfig in text format: ", s.message()));
  }
  absl::StatusOr<ModelConfig> config = ModelConfigFromProto(proto);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace biserve
