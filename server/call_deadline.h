// DeadlineOf: a gRPC call's deadline as the absl::Time the schedulers use.
#pragma once

#include <chrono>

#include "absl/time/time.h"
#include "grpcpp/server_context.h"

namespace biserve {

// absl::InfiniteFuture() for a call without a deadline.
inline absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  // gRPC reports "no deadline" as a time point billions of years away,
  // beyond what absl::Time converts.
  if (deadline >=
      std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 100)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

}  // namespace biserve
