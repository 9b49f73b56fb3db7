// ToGrpcStatus: the one conversion from absl::Status to grpc::Status, at the
// gRPC edge. The codes share their numbers (both follow google.rpc.Code).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace biserve {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace biserve
