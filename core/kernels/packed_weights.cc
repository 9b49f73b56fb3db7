#include "core/kernels/packed_weights.h"

namespace biserve {

PackedWeights::PackedWeights(const RowMatrix& b, const RowVector& bias,
                             Precision precision) {
  if (precision == Precision::kBf16) {
    packed_ = PackedMatrixBf16(b, bias);
  } else if (bias.size() > 0) {
    packed_ = PackedMatrix(b, bias);
  } else {
    packed_ = PackedMatrix(b);
  }
}

int64_t PackedWeights::rows() const {
  return std::visit([](const auto& m) { return m.rows(); }, packed_);
}

int64_t PackedWeights::cols() const {
  return std::visit([](const auto& m) { return m.cols(); }, packed_);
}

int64_t PackedWeights::padded_cols() const {
  return std::visit([](const auto& m) { return m.padded_cols(); }, packed_);
}

void PackedGemm(const float* a, int64_t lda, int64_t m, const PackedWeights& b,
                float* c, int64_t ldc) {
  if (const auto* bf16 = std::get_if<PackedMatrixBf16>(&b.packed_)) {
    PackedGemmBf16(a, lda, m, *bf16, c, ldc);
  } else {
    PackedGemm(a, lda, m, std::get<PackedMatrix>(b.packed_), c, ldc);
  }
}

}  // namespace biserve
