// FieldError: an INVALID_ARGUMENT about one field of an input, with the
// field's path carried as data.
//
// The message reads on its own and starts with the field ("features[3][1]
// is nan; inputs must be finite"); the path ("features[3][1]") rides along
// as a payload, so that a caller that nests the input under a path of its
// own ("sequences[2]") prefixes it without parsing the message back.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace biserve {

// INVALID_ARGUMENT with message field + rest (`rest` starts with what joins
// it to the field: " is ..." or ": expected ..."), naming `field`.
absl::Status FieldError(absl::string_view field, absl::string_view rest);

// The field `status` names, if it is a FieldError.
std::optional<std::string> ErrorField(const absl::Status& status);

// `status` as seen from the input's parent at `parent`: a FieldError's field
// becomes parent.field ("sequences[2].features[3][1] is nan; ..."); any other
// error reads "parent: message". OK stays OK.
absl::Status UnderParent(absl::string_view parent, const absl::Status& status);

}  // namespace biserve
