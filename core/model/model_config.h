// ModelConfig: a model's serving settings (models/<name>/config.pbtxt).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/kernels/precision.h"

namespace biserve {

// Which versions on disk are served, as in TF Serving.
struct VersionPolicy {
  enum class Kind { kLatest, kAll, kSpecific };
  Kind kind = Kind::kLatest;
  int num_versions = 1;           // kLatest
  std::vector<int64_t> versions;  // kSpecific

  // The versions of `on_disk` (any order) to serve, ascending.
  std::vector<int64_t> Select(absl::Span<const int64_t> on_disk) const;
  // "latest", "latest:2", "all" or "specific:1,3".
  std::string ToString() const;
};

// Batching knobs. Server-wide defaults come from flags; a model's
// config.pbtxt may override each.
struct BatchingOptions {
  int max_batch_size = 64;            // sequences per batch
  int64_t max_batch_steps = 8192;     // sum of sequence lengths per batch
  int64_t max_queue_delay_us = 2000;  // longest wait for a batch to fill
  int max_queue_size = 1024;          // queued requests before UNAVAILABLE

  // INVALID_ARGUMENT naming the field unless every value is positive (the
  // delay may be 0).
  absl::Status Validate() const;
};

struct BatchingOverrides {
  std::optional<int> max_batch_size;
  std::optional<int64_t> max_batch_steps;
  std::optional<int64_t> max_queue_delay_us;
  std::optional<int> max_queue_size;

  BatchingOptions ApplyTo(BatchingOptions defaults) const;
};

struct ModelConfig {
  VersionPolicy version_policy;
  BatchingOverrides batching;
  // Asked for by config.pbtxt; unset: the server's --precision.
  std::optional<Precision> precision;
};

}  // namespace biserve
