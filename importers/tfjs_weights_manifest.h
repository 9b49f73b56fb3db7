// ReadTfjsWeights: the weights a TF.js model.json's weightsManifest lists.
// The manifest is a list of groups; each group's shard files ("paths"),
// read end to end, hold its weights ("weights": name, shape, dtype) one
// after another as little-endian float32, in the order listed.
#pragma once

#include <filesystem>

#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"
#include "importers/weight_map.h"

namespace biserve::importers {

// Reads the shards `root`'s weightsManifest names, relative to `folder` (the
// model.json's folder), and cuts them into weights. INVALID_ARGUMENT for a
// malformed manifest, a shard path outside `folder`, a quantised or
// non-float32 weight, or a name listed twice; NOT_FOUND for a missing
// shard; DATA_LOSS when a group's shards hold more or fewer bytes than its
// weights need.
absl::StatusOr<WeightMap> ReadTfjsWeights(const google::protobuf::Struct& root,
                                          const std::filesystem::path& folder);

}  // namespace biserve::importers
