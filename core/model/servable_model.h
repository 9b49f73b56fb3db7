// ServableModel: one model version pinned for the duration of a request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/model/model.h"
#include "core/model/model_config.h"
#include "core/model/version_metrics.h"

namespace biserve {

// A model version pinned for the duration of one request.
struct ServableModel {
  std::string name;
  int64_t version = 0;
  std::shared_ptr<const Model> model;
  BatchingOptions batching;  // the server's defaults with the model's overrides
  // The version's metric handles (null when the registry has no factory):
  // what the request path records into.
  std::shared_ptr<const VersionMetrics> metrics;
};

}  // namespace biserve
