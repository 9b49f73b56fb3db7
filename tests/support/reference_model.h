// A plain, obviously-correct evaluation of one sequence, written straight
// from Keras' equations: no packing, no GEMM, no threads. Tests compare the
// fast batched path against it.
#pragma once

#include "core/eval/evaluator.h"
#include "core/model/model.h"

namespace biserve::testing {

// Evaluates `input` alone through `model`, filling the same fields Evaluate
// fills for `options`. REQUIRES: ValidateSequence(model, input).ok().
SequenceResult ReferenceEvaluate(const Model& model, const SequenceInput& input,
                                 const EvalOptions& options);

struct ReferenceOptions {
  // Emulates Precision::kBf16 whatever model.precision() is: every product
  // (input projections, recurrent products including GRU reset_after =
  // false's candidate, Dense) reads its weights and its input vector (x, h
  // or r * h, the Dense input) rounded to bfloat16 (ToBfloat16, to nearest
  // even) and sums them, from the float32 bias, in double. Everything else
  // stays as without it. False: Keras' float32 equations, as above.
  bool bf16_products = false;
  // With bf16_products: round toward zero (truncate the low 16 bits)
  // instead, a wrong bf16 path the tests' tolerances must reject.
  bool bf16_truncate = false;
};

// ReferenceEvaluate as above, with `reference`'s arithmetic.
SequenceResult ReferenceEvaluate(const Model& model, const SequenceInput& input,
                                 const EvalOptions& options,
                                 const ReferenceOptions& reference);

}  // namespace biserve::testing
