#include "importers/weight_map.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "importers/import_error.h"

namespace biserve::importers {
namespace {

// Whether `name` is `prefix`/.../`leaf`, with the boundary rule TakeWeight
// describes.
bool MatchesWeight(absl::string_view name, absl::string_view prefix,
                   absl::string_view leaf) {
  if (!absl::StartsWith(name, prefix)) return false;
  const std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.back() != leaf || parts.size() < 2) return false;
  const absl::string_view rest = name.substr(prefix.size());
  return absl::EndsWith(prefix, "/forward") ||
         absl::EndsWith(prefix, "/backward") || absl::StartsWith(rest, "/");
}

}  // namespace

absl::Status TakeWeight(WeightMap& weights, absl::string_view prefix,
                        absl::string_view leaf, absl::string_view where,
                        v1::Tensor* out) {
  Weight* found = nullptr;
  std::string found_name;
  for (auto& [name, weight] : weights) {
    if (!MatchesWeight(name, prefix, leaf)) continue;
    if (found != nullptr) {
      return Invalid(where,
                     absl::StrCat("two weights match '", prefix, "/.../", leaf,
                                  "': '", found_name, "' and '", name, "'"));
    }
    found = &weight;
    found_name = name;
  }
  if (found == nullptr) {
    return Invalid(where, absl::StrCat("weight '", leaf,
                                       "' is missing from the weights "
                                       "manifest (looked for a name like '",
                                       prefix, "/.../", leaf, "')"));
  }
  found->used = true;
  for (int64_t d : found->shape) out->add_shape(d);
  out->mutable_values()->Add(found->values.begin(), found->values.end());
  return absl::OkStatus();
}

std::optional<std::string> FirstUnusedWeight(const WeightMap& weights) {
  for (const auto& [name, weight] : weights) {
    if (!weight.used) return name;
  }
  return std::nullopt;
}

}  // namespace biserve::importers
