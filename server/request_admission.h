// RequestAdmission: the memory rules a request's bytes pass before protobuf
// builds anything from them.
//
// - Parse budget: the wire format is scanned first (proto/wire_scan.h), and
//   a request whose parsed form would take more than
//   kParsedBytesPerWireByte x its size (+ kParseBudgetFloorBytes) is refused
//   (RESOURCE_EXHAUSTED) while it is still just the bytes gRPC received.
//   Eight covers every honest encoding (packed floats take the same bytes
//   parsed as on the wire; the worst, an int64 of one byte, takes eight)
//   and refuses what only a hostile client sends: masses of empty
//   sub-messages, strings or unknown fields (20 to 100 times their size).
// - In-flight bytes: every request received and not yet answered holds its
//   size plus its estimated parsed size against --max_inflight_bytes;
//   beyond it a new request is refused at once (UNAVAILABLE: retry with
//   backoff), so many large requests together cannot exhaust memory. A
//   request is never refused by this when it would be the only one held.
// - Large requests' memory goes back to the system once they are let go of
//   (server/memory_returner.h), not kept in the arena of whichever gRPC
//   thread received them.
//
// Thread-safety: Admit and Reservation may be used from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "proto/wire_scan.h"
#include "server/memory_returner.h"

namespace biserve {

inline constexpr int64_t kParsedBytesPerWireByte = 8;
// Every message has a fixed cost however small it is (its objects), and
// many one-step sequences (1024 of one token: 5 KB on the wire, 110 KB
// parsed) are honest too.
inline constexpr int64_t kParseBudgetFloorBytes = 256 << 10;

class RequestAdmission {
 public:
  struct Options {
    // Most bytes held by requests received and not yet answered: their
    // serialized size plus their parsed size.
    int64_t max_inflight_bytes = int64_t{256} << 20;
    // Told of every reservation let go of; none if null.
    MemoryReturner* returner = nullptr;
  };

  // Bytes reserved for one request until the reservation is destroyed.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)),
          bytes_(std::exchange(other.bytes_, 0)) {}
    Reservation& operator=(Reservation&& other) noexcept {
      if (this != &other) {
        Release();
        owner_ = std::exchange(other.owner_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
      }
      return *this;
    }
    ~Reservation() { Release(); }

    int64_t bytes() const { return bytes_; }

   private:
    friend class RequestAdmission;
    Reservation(RequestAdmission* owner, int64_t bytes)
        : owner_(owner), bytes_(bytes) {}
    void Release() {
      if (owner_ != nullptr) owner_->Unreserve(bytes_);
      owner_ = nullptr;
    }
    RequestAdmission* owner_ = nullptr;
    int64_t bytes_ = 0;
  };

  explicit RequestAdmission(Options options) : options_(options) {}

  // Reserves `bytes`'s size, scans its wire format within the parse budget,
  // reserves the parsed size too and parses it into `request`. On success
  // the reservation holds both until it is destroyed (when the request is
  // answered) and `scan` (if not null) has the top-level field counts.
  // Errors: UNAVAILABLE over --max_inflight_bytes, RESOURCE_EXHAUSTED over
  // the parse budget, INVALID_ARGUMENT for bytes that are not a `Request`
  // and for a call that delivered no message at all.
  template <class Request>
  absl::StatusOr<Reservation> Admit(const grpc::ByteBuffer& bytes,
                                    Request* request,
                                    WireScan* scan = nullptr) {
    // gRPC runs a raw handler even when no message arrived (the client sent
    // none, its frame was truncated or had a bad compression flag, or the
    // call ended first), with a buffer that is not valid; read as bytes it
    // would be an empty, valid request. (Protobuf handlers never run then:
    // gRPC answers INTERNAL "No payload" itself.)
    if (!bytes.Valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the call carried no request message (a ",
          Request::descriptor()->full_name(),
          "): none was sent, or its gRPC frame was truncated or malformed"));
    }
    Reservation reservation;
    if (absl::Status s = Reserve(bytes.Length(), &reservation); !s.ok()) {
      return s;
    }
    grpc::ByteBuffer scanned(bytes);  // shares the slices: no copy
    grpc::ProtoBufferReader scan_reader(&scanned);
    absl::StatusOr<WireScan> result =
        ScanWire(*Request::descriptor(), &scan_reader,
                 ParseBudget(static_cast<int64_t>(bytes.Length())));
    if (!result.ok()) return Explain(result.status());
    if (absl::Status s = Reserve(result->parsed_bytes, &reservation); !s.ok()) {
      return s;
    }
    grpc::ByteBuffer parsed(bytes);
    grpc::ProtoBufferReader parse_reader(&parsed);
    if (!request->ParseFromZeroCopyStream(&parse_reader)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the message is not a valid ", Request::descriptor()->full_name()));
    }
    if (scan != nullptr) *scan = *std::move(result);
    return reservation;
  }

  // Most memory a request of `wire_bytes` may take once parsed.
  static int64_t ParseBudget(int64_t wire_bytes) {
    return kParsedBytesPerWireByte * wire_bytes + kParseBudgetFloorBytes;
  }

  // Bytes held by received, unanswered requests now.
  int64_t inflight_bytes() const { return inflight_bytes_.load(); }

 private:
  // Adds `bytes` to `reservation` (empty or one of this admission's).
  absl::Status Reserve(int64_t bytes, Reservation* reservation);
  // Gives back what a reservation held.
  void Unreserve(int64_t bytes);
  // Adds what the limit is to the scanner's message.
  absl::Status Explain(const absl::Status& scan_status) const;

  const Options options_;
  std::atomic<int64_t> inflight_bytes_{0};
};

}  // namespace biserve
