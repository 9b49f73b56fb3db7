#include "importers/keras_layer_options.h"

#include <cctype>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/kernels/activation.h"
#include "importers/import_error.h"
#include "importers/json_fields.h"

namespace biserve::importers {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// The activation's name as written: a string, or Keras 3's function object
// {"module": "keras.activations", "class_name": "function",
//  "config": "tanh", ...}.
absl::StatusOr<std::string> ActivationName(const Value* value,
                                           absl::string_view key,
                                           absl::string_view default_name,
                                           absl::string_view where) {
  if (value == nullptr) return std::string(default_name);
  if (value->kind_case() == Value::kStringValue) return value->string_value();
  if (!value->has_struct_value()) {
    return Invalid(where, absl::StrCat(key, ": expected a name"));
  }
  std::optional<std::string> inner = GetString(value->struct_value(), "config");
  if (!inner.has_value()) {
    return Invalid(where, absl::StrCat(key,
                                       ": a custom activation object "
                                       "is not supported"));
  }
  return *inner;
}

// hardSigmoid -> hard_sigmoid (TF.js writes camelCase).
std::string SnakeCase(absl::string_view name) {
  std::string snake;
  for (char c : name) {
    if (std::isupper(static_cast<unsigned char>(c))) {
      snake += '_';
      snake += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      snake += c;
    }
  }
  return snake;
}

}  // namespace

absl::StatusOr<std::string> ActivationOption(const Struct& config,
                                             absl::string_view key,
                                             absl::string_view default_name,
                                             KerasFlavour flavour,
                                             absl::string_view where) {
  absl::StatusOr<std::string> name =
      ActivationName(Get(config, key), key, default_name, where);
  if (!name.ok()) return name.status();
  std::string snake = SnakeCase(*name);
  if (flavour == KerasFlavour::kKeras3 && snake == "hard_sigmoid") {
    snake = "hard_sigmoid_keras3";
  }
  if (!ParseActivation(snake).ok()) {
    return Invalid(where, absl::StrCat(key, " '", *name,
                                       "' is not supported; see "
                                       "docs/model-format.md for the list"));
  }
  return snake;
}

absl::Status CheckCommonOptions(const Struct& config, absl::string_view where) {
  const Value* dtype = Get(config, "dtype");
  std::string dtype_name = "float32";
  if (dtype != nullptr && dtype->kind_case() == Value::kStringValue) {
    dtype_name = dtype->string_value();
  } else if (dtype != nullptr && dtype->has_struct_value()) {
    // A Keras dtype policy: {"class_name": "Policy", "config": {"name": ..}}
    const Struct* policy = GetObject(dtype->struct_value(), "config");
    if (policy != nullptr) {
      dtype_name = GetString(*policy, "name").value_or("float32");
    }
  }
  if (dtype_name != "float32") {
    return Invalid(where, absl::StrCat("dtype ", dtype_name,
                                       " is not supported; biserve computes "
                                       "in float32"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int32_t> UnitsOption(const Struct& config,
                                    absl::string_view where) {
  std::optional<double> units = GetNumber(config, "units");
  if (!units.has_value() || *units < 1) {
    return Invalid(where, "units must be a positive number");
  }
  return ToInt32(*units);
}

}  // namespace biserve::importers
