// Reading a Keras layer config's options the way every layer converter
// needs them: activations (spelled differently by Keras 2, Keras 3 and
// TF.js), the dtype, and units.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "importers/keras_layer.h"

namespace biserve::importers {

// The activation option `key` as biserve names it (ParseActivation), or
// `default_name` when absent. Keras 2, Keras 3 and TF.js spell activations
// differently: "hard_sigmoid", "hardSigmoid", or a serialised function
// object. Keras 3's hard_sigmoid is another function than Keras 2's (see
// docs/model-format.md): it reads as "hard_sigmoid_keras3".
// INVALID_ARGUMENT, naming `where` and `key`, for a custom activation or
// one biserve does not have.
absl::StatusOr<std::string> ActivationOption(
    const google::protobuf::Struct& config, absl::string_view key,
    absl::string_view default_name, KerasFlavour flavour,
    absl::string_view where);

// Options that change numerics and that biserve does not do: a dtype (or
// dtype policy) other than float32.
absl::Status CheckCommonOptions(const google::protobuf::Struct& config,
                                absl::string_view where);

// The "units" option; INVALID_ARGUMENT unless a number >= 1.
absl::StatusOr<int32_t> UnitsOption(const google::protobuf::Struct& config,
                                    absl::string_view where);

}  // namespace biserve::importers
