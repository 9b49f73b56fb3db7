// Typed reads of a JSON object's fields, over google.protobuf.Struct (what
// JsonStringToMessage parses into). Keras configs come as JSON in every
// format the importers read: TF.js' model.json, .keras' config.json and
// .h5's model_config attribute.
//
// A JSON null reads as absent, and a field of another type than asked for
// reads as absent too: the caller decides whether that is an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace biserve::importers {

// The field `key`, or null when absent or JSON null.
const google::protobuf::Value* Get(const google::protobuf::Struct& object,
                                   absl::string_view key);

// The field `key` when it is an object (a list, a string, ...); else null.
const google::protobuf::Struct* GetObject(
    const google::protobuf::Struct& object, absl::string_view key);
const google::protobuf::ListValue* GetList(
    const google::protobuf::Struct& object, absl::string_view key);
std::optional<std::string> GetString(const google::protobuf::Struct& object,
                                     absl::string_view key);
std::optional<double> GetNumber(const google::protobuf::Struct& object,
                                absl::string_view key);
std::optional<bool> GetBool(const google::protobuf::Struct& object,
                            absl::string_view key);

// A JSON number as an int32, saturated (NaN: 0). Keras writes whole numbers
// where this is used; any other number must get an error from the checks
// that follow, not undefined behaviour from a plain cast (found by
// fuzz_tfjs_import).
int32_t ToInt32(double v);

}  // namespace biserve::importers
