// ParseTextProto: protobuf text format with the first error's position.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace biserve {

// INVALID_ARGUMENT "line L, column C: <parser message>" if `text` is not a
// valid text-format `message`.
absl::Status ParseTextProto(const std::string& text,
                            google::protobuf::Message* message);

}  // namespace biserve
