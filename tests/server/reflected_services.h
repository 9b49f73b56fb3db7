// ReflectedServices: what server reflection lists, asked as a generic tool
// asks it, for tests.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"

namespace biserve::testing {

// The services server reflection lists on `channel` (the raw reply of
// a ServerReflectionInfo call with list_services set, as a generic tool
// sends it); empty if the call fails.
inline std::string ReflectedServices(
    const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub generic(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  auto call = generic.PrepareCall(
      &context,
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok = false;
  std::string bytes;
  call->StartCall(reinterpret_cast<void*>(1));
  if (cq.Next(&tag, &ok) && ok) {
    // ServerReflectionRequest { list_services (field 7) = "" }.
    const char request_bytes[] = {0x3a, 0x00};
    grpc::Slice slice(request_bytes, sizeof(request_bytes));
    grpc::ByteBuffer request(&slice, 1);
    call->Write(request, reinterpret_cast<void*>(2));
    grpc::ByteBuffer reply;
    if (cq.Next(&tag, &ok) && ok) {
      call->Read(&reply, reinterpret_cast<void*>(3));
      std::vector<grpc::Slice> slices;
      if (cq.Next(&tag, &ok) && ok && reply.Dump(&slices).ok()) {
        for (const grpc::Slice& s : slices) {
          bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
      }
    }
  }
  context.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return bytes;
}

}  // namespace biserve::testing
