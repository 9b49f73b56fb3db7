// PackedWeights: a model kernel packed once, at load, for the precision the
// model is served in, and the one product every layer runs on it.
//
// kFp32 holds a PackedMatrix (PackedGemm), kBf16 a PackedMatrixBf16
// (PackedGemmBf16). Layers hold PackedWeights and call PackedGemm on them,
// so which kernel runs is decided here and nowhere else.
#pragma once

#include <cstdint>
#include <variant>

#include "core/common/eigen_types.h"
#include "core/kernels/packed_gemm.h"
#include "core/kernels/packed_gemm_bf16.h"
#include "core/kernels/precision.h"

namespace biserve {

class PackedWeights {
 public:
  PackedWeights() = default;
  // Packs `b` ([k, n]) with the optional bias row `bias` ([n]; empty for
  // none) in `precision`. REQUIRES: precision is kFp32, or
  // PackedGemmBf16Available() (ServablePrecision decides).
  PackedWeights(const RowMatrix& b, const RowVector& bias, Precision precision);

  Precision precision() const {
    return std::holds_alternative<PackedMatrixBf16>(packed_) ? Precision::kBf16
                                                             : Precision::kFp32;
  }
  int64_t rows() const;
  int64_t cols() const;
  // The row stride PackedGemm needs for c: columns in whole panels.
  int64_t padded_cols() const;

 private:
  friend void PackedGemm(const float* a, int64_t lda, int64_t m,
                         const PackedWeights& b, float* c, int64_t ldc);
  std::variant<PackedMatrix, PackedMatrixBf16> packed_;
};

// c[m, b.padded_cols()] = a[m, b.rows()] * b (+ its bias row) in b's
// precision, as PackedGemm and PackedGemmBf16 say; the same bits for a row
// whatever the rows around it.
void PackedGemm(const float* a, int64_t lda, int64_t m, const PackedWeights& b,
                float* c, int64_t ldc);

}  // namespace biserve
