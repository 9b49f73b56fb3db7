#include "core/eval/field_error.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace biserve {
namespace {

// The payload's type URL (absl::Status payloads are keyed by one).
constexpr absl::string_view kFieldPayload = "biserve/input_field";

}  // namespace

absl::Status FieldError(absl::string_view field, absl::string_view rest) {
  absl::Status status = absl::InvalidArgumentError(absl::StrCat(field, rest));
  status.SetPayload(kFieldPayload, absl::Cord(field));
  return status;
}

std::optional<std::string> ErrorField(const absl::Status& status) {
  const auto field = status.GetPayload(kFieldPayload);
  if (!field.has_value()) return std::nullopt;
  return std::string(*field);
}

absl::Status UnderParent(absl::string_view parent, const absl::Status& status) {
  if (status.ok()) return status;
  const std::optional<std::string> field = ErrorField(status);
  if (!field.has_value()) {
    return absl::Status(status.code(),
                        absl::StrCat(parent, ": ", status.message()));
  }
  // The message starts with the field (FieldError).
  absl::Status nested(status.code(),
                      absl::StrCat(parent, ".", status.message()));
  nested.SetPayload(kFieldPayload,
                    absl::Cord(absl::StrCat(parent, ".", *field)));
  return nested;
}

}  // namespace biserve
