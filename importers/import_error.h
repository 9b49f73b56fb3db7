// The importers' error for a file they cannot convert: INVALID_ARGUMENT,
// "<where>: <what>", where `where` names the file, layer or manifest entry
// (e.g. "layer 'dense' (Dense)") and `what` what was expected and found.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace biserve::importers {

inline absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

}  // namespace biserve::importers
