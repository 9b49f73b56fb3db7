// Keras activation functions, applied in place to one row of values.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace biserve {

enum class Activation {
  kLinear,
  kTanh,
  kSigmoid,
  kHardSigmoid,        // Keras 2, tf.keras and TF.js: clip(0.2 x + 0.5, 0, 1)
  kHardSigmoidKeras3,  // Keras 3: relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1)
  kRelu,
  kRelu6,
  kElu,  // alpha = 1, Keras' default
  kSelu,
  kSoftsign,
  kSoftplus,
  kSwish,  // x * sigmoid(x); Keras 3 also calls it "silu"
  kGelu,   // exact (erf) form, Keras' default approximate = false
  kExponential,
  kSoftmax,     // over the row (Keras: over the last axis)
  kLogSoftmax,  // log of softmax over the row, as Keras' log_softmax
};

// Parses a Keras activation name ("tanh", "hard_sigmoid", ...). Unknown names
// give INVALID_ARGUMENT listing the accepted ones.
absl::StatusOr<Activation> ParseActivation(absl::string_view name);

// The canonical name ParseActivation accepts for `activation`.
absl::string_view ActivationName(Activation activation);

// Applies `activation` to every value of `row` in place; kSoftmax and
// kLogSoftmax normalise over the whole row.
void Activate(Activation activation, absl::Span<float> row);

}  // namespace biserve
