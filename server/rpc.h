// Rpc: the RPCs the metrics count requests under (the `rpc` label), as an
// index, so that the request path finds its counters in an array.
#pragma once

#include "absl/strings/string_view.h"

namespace biserve {

enum class Rpc {
  // biserve.v1.InferenceService
  kPredict,
  kPredictStream,
  kGetModelMetadata,
  kListModels,
  // inference.GRPCInferenceService
  kModelInfer,
  kServerLive,
  kServerReady,
  kModelReady,
  kServerMetadata,
  kModelMetadata,
};
inline constexpr int kRpcCount = 10;

// The method's name, the label's value: "Predict".
inline absl::string_view RpcName(Rpc rpc) {
  constexpr absl::string_view kNames[kRpcCount] = {
      "Predict",        "PredictStream", "GetModelMetadata", "ListModels",
      "ModelInfer",     "ServerLive",    "ServerReady",      "ModelReady",
      "ServerMetadata", "ModelMetadata"};
  return kNames[static_cast<int>(rpc)];
}

}  // namespace biserve
