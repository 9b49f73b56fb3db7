// ReadFile: a whole file into a string, with a Status a user can act on.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace biserve {

// NOT_FOUND, naming `path` and `what` it was meant to be ("the model file"),
// when the file cannot be opened.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     absl::string_view what);

}  // namespace biserve
