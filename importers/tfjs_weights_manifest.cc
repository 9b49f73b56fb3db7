#include "importers/tfjs_weights_manifest.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"
#include "proto/read_file.h"

namespace biserve::importers {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

static_assert(std::endian::native == std::endian::little,
              "weight shards are little-endian float32");

// One group's shards, concatenated, and their names for messages.
struct GroupBytes {
  std::string bytes;
  std::vector<std::string> files;
};

// One entry of a group's "weights" list.
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// Shards sit in the model's folder, where the converter and model.save
// write them. An absolute path or a ".." would read any file of the
// machine into the weights (or /dev/zero without end).
absl::Status CheckShardPath(const std::filesystem::path& relative,
                            absl::string_view raw, absl::string_view where) {
  if (relative.empty() || relative.is_absolute() ||
      std::any_of(
          relative.begin(), relative.end(),
          [](const std::filesystem::path& part) { return part == ".."; })) {
    return Invalid(
        where,
        absl::StrCat("paths must name files in the model's folder; got '",
                     raw.substr(0, 100), "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<GroupBytes> ReadShards(const ListValue& paths,
                                      const std::filesystem::path& folder,
                                      absl::string_view where) {
  GroupBytes group;
  for (const Value& path : paths.values()) {
    if (path.kind_case() != Value::kStringValue) {
      return Invalid(where, "paths must be strings");
    }
    const std::filesystem::path relative(path.string_value());
    if (absl::Status s = CheckShardPath(relative, path.string_value(), where);
        !s.ok()) {
      return s;
    }
    const std::string file = (folder / relative).string();
    absl::StatusOr<std::string> shard = ReadFile(file, "the weight shard");
    if (!shard.ok()) return shard.status();
    group.bytes += *shard;
    group.files.push_back(path.string_value());
  }
  return group;
}

// Whole numbers up to 2^53 (exact in a double), so that the cast to int64
// is defined.
absl::StatusOr<std::vector<int64_t>> ParseShape(const ListValue& shape,
                                                absl::string_view name) {
  std::vector<int64_t> dims;
  for (const Value& d : shape.values()) {
    if (d.kind_case() != Value::kNumberValue ||
        !(d.number_value() >= 0 && d.number_value() <= 0x1p53) ||
        d.number_value() != std::floor(d.number_value())) {
      return Invalid(name, "shape must be a list of sizes");
    }
    dims.push_back(static_cast<int64_t>(d.number_value()));
  }
  return dims;
}

absl::StatusOr<WeightSpec> ParseWeightSpec(const Value& value,
                                           absl::string_view where) {
  if (!value.has_struct_value()) return Invalid(where, "expected an object");
  const Struct& spec = value.struct_value();
  std::optional<std::string> name = GetString(spec, "name");
  const ListValue* shape = GetList(spec, "shape");
  if (!name.has_value() || shape == nullptr) {
    return Invalid(where, "expected \"name\" and \"shape\"");
  }
  const std::string dtype = GetString(spec, "dtype").value_or("float32");
  if (Get(spec, "quantization") != nullptr) {
    return Invalid(*name,
                   "quantized weights are not supported; convert without "
                   "quantization");
  }
  if (dtype != "float32") {
    return Invalid(*name, absl::StrCat("dtype ", dtype,
                                       " is not supported; biserve "
                                       "loads float32 weights"));
  }
  absl::StatusOr<std::vector<int64_t>> dims = ParseShape(*shape, *name);
  if (!dims.ok()) return dims.status();
  return WeightSpec{*std::move(name), *std::move(dims)};
}

// The number of floats `shape` holds, or nullopt when more than `left`. A
// shape may claim any count: multiply it against the floats the shards
// still hold, so that nothing overflows (found by fuzz_tfjs_import: the
// product wrapped and passed the size check).
std::optional<size_t> ElementCount(const std::vector<int64_t>& shape,
                                   size_t left) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  size_t count = 1;
  for (int64_t dim : shape) {
    if (static_cast<size_t>(dim) > left / count) return std::nullopt;
    count *= static_cast<size_t>(dim);
  }
  return count;
}

// Cuts `spec`'s floats out of `group` at `*offset`, and moves the offset on.
absl::StatusOr<Weight> CutWeight(WeightSpec spec, const GroupBytes& group,
                                 size_t* offset) {
  const std::string& bytes = group.bytes;
  const std::optional<size_t> count =
      ElementCount(spec.shape, (bytes.size() - *offset) / sizeof(float));
  const size_t size = count.value_or(0) * sizeof(float);
  if (!count.has_value() || *offset + size > bytes.size()) {
    return absl::DataLossError(absl::StrCat(
        absl::StrJoin(group.files, ", "), ": the shards hold ", bytes.size(),
        " bytes, but the manifest needs ",
        count.has_value() ? absl::StrCat(*offset + size) : std::string("more"),
        " by the end of weight '", spec.name,
        "' (a truncated or mismatched shard)"));
  }
  Weight weight;
  weight.shape = std::move(spec.shape);
  weight.values.resize(*count);
  if (size > 0) {  // memcpy from or to null is undefined even for 0 bytes
    std::memcpy(weight.values.data(), bytes.data() + *offset, size);
  }
  *offset += size;
  return weight;
}

// Reads group `g` of the manifest into `weights`.
absl::Status ReadGroup(const Value& value, int g,
                       const std::filesystem::path& folder,
                       WeightMap& weights) {
  const std::string where = absl::StrCat("weightsManifest[", g, "]");
  if (!value.has_struct_value()) {
    return Invalid(where, "expected an object with paths and weights");
  }
  const ListValue* paths = GetList(value.struct_value(), "paths");
  const ListValue* specs = GetList(value.struct_value(), "weights");
  if (paths == nullptr || specs == nullptr) {
    return Invalid(where, "expected \"paths\" and \"weights\" lists");
  }
  absl::StatusOr<GroupBytes> group = ReadShards(*paths, folder, where);
  if (!group.ok()) return group.status();
  size_t offset = 0;
  for (int w = 0; w < specs->values_size(); ++w) {
    absl::StatusOr<WeightSpec> spec = ParseWeightSpec(
        specs->values(w), absl::StrCat(where, ".weights[", w, "]"));
    if (!spec.ok()) return spec.status();
    const std::string name = spec->name;
    absl::StatusOr<Weight> weight =
        CutWeight(*std::move(spec), *group, &offset);
    if (!weight.ok()) return weight.status();
    std::string key = name;
    if (absl::EndsWith(key, ":0")) key.resize(key.size() - 2);
    if (!weights.emplace(key, *std::move(weight)).second) {
      return Invalid(name, "the manifest lists this weight twice");
    }
  }
  if (offset != group->bytes.size()) {
    return absl::DataLossError(
        absl::StrCat(absl::StrJoin(group->files, ", "), ": the shards hold ",
                     group->bytes.size(), " bytes, but the manifest describes ",
                     offset, " (a mismatched shard)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WeightMap> ReadTfjsWeights(const Struct& root,
                                          const std::filesystem::path& folder) {
  const ListValue* groups = GetList(root, "weightsManifest");
  if (groups == nullptr) {
    return Invalid("model.json", "no weightsManifest list");
  }
  WeightMap weights;
  for (int g = 0; g < groups->values_size(); ++g) {
    if (absl::Status s = ReadGroup(groups->values(g), g, folder, weights);
        !s.ok()) {
      return s;
    }
  }
  return weights;
}

}  // namespace biserve::importers
