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

}  // namespace biserve::testing
