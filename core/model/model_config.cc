#include "core/model/model_config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace biserve {

std::vector<int64_t> VersionPolicy::Select(
    absl::Span<const int64_t> on_disk) const {
  std::vector<int64_t> sorted(on_disk.begin(), on_disk.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  switch (kind) {
    case Kind::kAll:
      return sorted;
    case Kind::kLatest: {
      size_t keep = static_cast<size_t>(std::max(num_versions, 1));
      if (sorted.size() > keep)
        sorted.erase(sorted.begin(), sorted.end() - keep);
      return sorted;
    }
    case Kind::kSpecific: {
      std::vector<int64_t> chosen;
      for (int64_t v : sorted) {
        if (std::find(versions.begin(), versions.end(), v) != versions.end()) {
          chosen.push_back(v);
        }
      }
      return chosen;
    }
  }
  return {};
}

std::string VersionPolicy::ToString() const {
  switch (kind) {
    case Kind::kAll:
      return "all";
    case Kind::kLatest:
      return num_versions <= 1 ? "latest"
                               : absl::StrCat("latest:", num_versions);
    case Kind::kSpecific:
      return absl::StrCat("specific:", absl::StrJoin(versions, ","));
  }
  return "";
}

absl::Status BatchingOptions::Validate() const {
  auto positive = [](absl::string_view name, int64_t value) -> absl::Status {
    if (value >= 1) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be at least 1; was ", value));
  };
  if (auto s = positive("max_batch_size", max_batch_size); !s.ok()) return s;
  if (auto s = positive("max_batch_steps", max_batch_steps); !s.ok()) return s;
  if (auto s = positive("max_queue_size", max_queue_size); !s.ok()) return s;
  if (max_queue_delay_us < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_queue_delay_us must be 0 or more; was ", max_queue_delay_us));
  }
  return absl::OkStatus();
}

BatchingOptions BatchingOverrides::ApplyTo(BatchingOptions defaults) const {
  if (max_batch_size) defaults.max_batch_size = *max_batch_size;
  if (max_batch_steps) defaults.max_batch_steps = *max_batch_steps;
  if (max_queue_delay_us) defaults.max_queue_delay_us = *max_queue_delay_us;
  if (max_queue_size) defaults.max_queue_size = *max_queue_size;
  return defaults;
}

}  // namespace biserve
