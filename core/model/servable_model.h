// ServableModel: one model version pinned for the duration of a request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/model/model.h"
#include "core/model/model_config.h"

namespace biserve {

// A model version pinned for the duration of one request.
struct ServableModel {
  std::string name;
  int64_t version = 0;
  std::shared_ptr<const Model> model;
  BatchingOptions batching;  // the server's defaults with the model's overrides
};

}  // namespace biserve
