// WireScan: what a serialized message will cost once parsed, read from its
// wire format before protobuf builds anything.
//
// Why: protobuf turns a few bytes on the wire into much more memory. An
// empty sub-message is 2 bytes on the wire and a heap object of 50 to 200
// bytes once parsed; an unknown field is kept in a 16-byte record. A 16 MB
// request of 8 million empty `Sequence`s took 860 MB to parse. Scanning the
// wire first lets the server refuse such a request while it holds only the
// bytes it received, and count repeated fields (sequences, tensors) against
// their limits before any of them exists.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/zero_copy_stream.h"

namespace biserve {

struct WireScan {
  // Estimated heap memory of the parsed message, in bytes: every message
  // object, string, repeated element and unknown field it will hold (as
  // protobuf 3.21's generated classes allocate them, without arenas).
  int64_t parsed_bytes = 0;
  // How often each field number occurs at the top level (index: field
  // number, for numbers below 64; a packed repeated scalar counts once).
  std::vector<int64_t> top_level_counts = std::vector<int64_t>(64, 0);

  int64_t CountOf(int field_number) const {
    return field_number >= 0 && field_number < 64
               ? top_level_counts[field_number]
               : 0;
  }
};

// Scans one serialized message of type `type` from `wire`. Stops as soon
// as the estimate exceeds `max_parsed_bytes` (RESOURCE_EXHAUSTED, saying
// both) or the bytes are not a valid message of that type
// (INVALID_ARGUMENT). Nesting deeper than 100 levels (protobuf's own
// limit) is INVALID_ARGUMENT too.
absl::StatusOr<WireScan> ScanWire(
    const google::protobuf::Descriptor& type,
    google::protobuf::io::ZeroCopyInputStream* wire, int64_t max_parsed_bytes);

}  // namespace biserve
