// RawUnaryCall: a unary call whose request arrives as bytes (gRPC's raw
// callback API) and whose reply is serialized here, so that the request
// passes RequestAdmission before protobuf builds it.
//
// The call owns its request, response and byte reservation; it deletes
// itself when gRPC is done with it (after the reply is sent), which is when
// the reserved bytes are released.
#pragma once

#include "absl/status/status.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "server/grpc_status.h"
#include "server/request_admission.h"

namespace biserve {

template <class Request, class Response>
class RawUnaryCall final : public grpc::ServerUnaryReactor {
 public:
  // `reply` is gRPC's and outlives the call.
  explicit RawUnaryCall(grpc::ByteBuffer* reply) : reply_(reply) {}

  // Sends `response` (when `status` is OK) or the error. Exactly once.
  void Reply(const absl::Status& status) {
    if (status.ok()) {
      bool own_buffer;
      const grpc::Status serialized =
          grpc::SerializationTraits<Response>::Serialize(response, reply_,
                                                         &own_buffer);
      if (!serialized.ok()) {
        Finish(serialized);
        return;
      }
    }
    Finish(ToGrpcStatus(status));
  }

  void OnDone() override { delete this; }

  // OnDone only frees the call and OnCancel does nothing, so gRPC may run
  // them on the thread that completes the call instead of handing each
  // call's end to its executor thread: one thread switch fewer per call,
  // which matters most on a server with one CPU. (gRPC marks this hook
  // "not API"; its own trivial reactors use it. If a gRPC release drops
  // it, the `override` stops the build rather than silently losing it.)
  bool InternalInlineable() override { return true; }

  Request request;
  Response response;
  RequestAdmission::Reservation reservation;

 private:
  grpc::ByteBuffer* const reply_;
};

}  // namespace biserve
