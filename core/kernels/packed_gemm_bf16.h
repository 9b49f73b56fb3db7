// PackedMatrixBf16 and PackedGemmBf16: C = A * B with B stored in bfloat16
// and every product accumulated in float32, on AVX512_BF16's vdpbf16ps (two
// bf16 products per float lane per instruction, where an FMA does one).
// A is rounded to bf16 as it is read; C, the bias and the accumulation stay
// float32.
//
// Models asking for BF16 precision run every product here (PackedWeights
// in packed_weights.h picks it). Speed depends on the CPU's vdpbf16ps rate:
// on the Intel Emerald Rapids development machine (AVX512_BF16, but no AMX
// in its VM) it issues one per two cycles where an FMA issues two per
// cycle, so this kernel runs at 0.5x to 0.6x PackedGemm's fp32 rate (about
// 80 GFLOP/s, one thread; bench/RESULTS.md). Where a CPU issues it at its
// FMA rate (to be measured on AMD's Zen 4 and Zen 5), it can reach 2x.
//
// Batch invariance holds as for PackedGemm: each element of C sums its
// depth pairs in order from the bias, whatever the rows around it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/common/eigen_types.h"
#include "core/kernels/packed_gemm.h"

namespace biserve {

// float -> bfloat16 bits, rounding to nearest even (as vcvtne2ps2bf16 and
// PyTorch's and TensorFlow's conversions do); NaN stays NaN, and float32
// subnormals become a signed zero, as the instruction makes them.
uint16_t ToBfloat16(float value);
// bfloat16 bits -> float (exact).
float FromBfloat16(uint16_t bits);

class PackedMatrixBf16 {
 public:
  PackedMatrixBf16() = default;
  // Packs `b` ([k, n]) in bf16 into panels of kPanel columns; depth rows
  // go in pairs (2q, 2q + 1), an odd last row paired with zero. `bias`
  // ([n], float32) starts every row's sums; empty for none.
  explicit PackedMatrixBf16(const RowMatrix& b,
                            const RowVector& bias = RowVector());

  static constexpr int kPanel = PackedMatrix::kPanel;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t pairs() const { return (rows_ + 1) / 2; }
  int64_t panels() const { return panels_; }
  int64_t padded_cols() const { return panels_ * kPanel; }
  // Panel p: [pairs, kPanel] 32-bit words, each the bf16 of rows 2q (low
  // half) and 2q + 1 (high half) of one column: vdpbf16ps' operand layout.
  const uint32_t* panel(int64_t p) const {
    return data_.data() + p * pairs() * kPanel;
  }
  const float* bias(int64_t p) const {
    return bias_.empty() ? nullptr : bias_.data() + p * kPanel;
  }

 private:
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  int64_t panels_ = 0;
  std::vector<uint32_t, CacheLineAllocator<uint32_t>> data_;
  std::vector<float, CacheLineAllocator<float>> bias_;
};

// Whether this CPU has AVX512_BF16 (Zen 4 and later, Cooper Lake, Sapphire
// Rapids and later) and BISERVE_PACKED_ISA does not hold the kernels below
// AVX-512.
bool PackedGemmBf16Available();
// "avx512_bf16" when PackedGemmBf16Available(), else "none".
const char* PackedGemmBf16Isa();

// c[m, padded_cols] = bf16(a[m, b.rows()]) * b (+ b's bias row), float32
// accumulation; rows of `a` lda floats apart, of `c` ldc floats apart; the
// columns past b.cols() get junk the caller ignores. REQUIRES:
// PackedGemmBf16Available(); b.rows() >= 1; ldc >= b.padded_cols().
void PackedGemmBf16(const float* a, int64_t lda, int64_t m,
                    const PackedMatrixBf16& b, float* c, int64_t ldc);

}  // namespace biserve
