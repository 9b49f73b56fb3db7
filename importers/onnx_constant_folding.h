// Shape ops computed on constants. An export with do_constant_folding=False
// (and parts of some exporter versions) rearranges the recurrent weights
// with Slice, Concat, Transpose, Unsqueeze, Squeeze, Reshape and Gather at
// run time; the importer folds them at load so that a node still sees its
// weights as constants. Each function checks its arguments and returns
// INVALID_ARGUMENT for what ONNX would refuse.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "importers/onnx_tensor.h"

namespace biserve::onnx_import {

absl::StatusOr<ConstTensor> FoldTranspose(const ConstTensor& x,
                                          std::vector<int64_t> perm);

// ONNX Slice: starts, ends and (optional) axes and steps, one per sliced
// axis; out-of-range bounds clamp as ONNX defines.
absl::StatusOr<ConstTensor> FoldSlice(const ConstTensor& x,
                                      const std::vector<int64_t>& starts,
                                      const std::vector<int64_t>& ends,
                                      std::vector<int64_t> axes,
                                      std::vector<int64_t> steps);

absl::StatusOr<ConstTensor> FoldConcat(
    const std::vector<const ConstTensor*>& xs, int64_t axis);

absl::StatusOr<ConstTensor> FoldGather(const ConstTensor& x,
                                       const ConstTensor& indices,
                                       int64_t axis);

// Reshape with ONNX's 0 (copy the dim; unless allow_zero) and -1 (infer).
absl::StatusOr<ConstTensor> FoldReshape(const ConstTensor& x,
                                        const std::vector<int64_t>& shape,
                                        bool allow_zero);

// Squeeze the given axes (all axes of size 1 when empty); Unsqueeze inserts
// axes of size 1 at the given output positions.
absl::StatusOr<ConstTensor> FoldSqueeze(const ConstTensor& x,
                                        std::vector<int64_t> axes);
absl::StatusOr<ConstTensor> FoldUnsqueeze(const ConstTensor& x,
                                          std::vector<int64_t> axes);

}  // namespace biserve::onnx_import
