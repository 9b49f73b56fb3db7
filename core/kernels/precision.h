// Precision: the number format a model's weights are stored and multiplied
// in, and the one rule for what a CPU can serve.
//
// kFp32 is Keras' own arithmetic. kBf16 (opt-in, per model) stores every
// kernel in bfloat16 once at load and multiplies with float32
// accumulation (PackedGemmBf16); inputs to each product are rounded to
// bfloat16 as they are read, while biases, activations, gates and states
// stay float32. docs/precision.md measures what that costs in accuracy.
#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace biserve {

enum class Precision { kFp32, kBf16 };

// "FP32" or "BF16": config.pbtxt's and --precision's spelling.
absl::string_view PrecisionName(Precision precision);

// "FP32"/"fp32" or "BF16"/"bf16"; nullopt for anything else.
std::optional<Precision> ParsePrecision(absl::string_view text);

// Abseil flag support (--precision=BF16): ParsePrecision, with an error
// that names the values.
bool AbslParseFlag(absl::string_view text, Precision* precision,
                   std::string* error);
std::string AbslUnparseFlag(Precision precision);

// The precision a model asking for `requested` is served in on this CPU:
// kBf16 only where a bf16 kernel runs (PackedGemmBf16Available), else
// kFp32. Callers log and report the difference.
Precision ServablePrecision(Precision requested);

// Why `requested` is served as `served` on this CPU, for logs and
// metadata; empty when they are the same.
std::string PrecisionFallbackReason(Precision requested, Precision served);

}  // namespace biserve
