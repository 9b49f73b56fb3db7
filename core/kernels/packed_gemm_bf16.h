// PackedMatrixBf16 and PackedGemmBf16: C = A * B with B stored in bfloat16
// and every product accumulated in float32, on AVX512_BF16's vdpbf16ps (two
// bf16 products per float lane per instruction, where an FMA does one).
// A is rounded to bf16 as it is read; C, the bias and the accumulation stay
// float32.
//
// Groundwork for issue 19's opt-in bf16 precision: the kernel and its tests.
// Not yet used by the evaluator (model config, flags and metadata come
// with it). Not yet fast either: on the Intel Emerald Rapids development
// machine (AVX512_BF16, but no AMX in its VM) this kernel levels off at
// about 80 GFLOP/s, 0.46x to 0.60x PackedGemm's fp32 rate on shapes of 32
// rows or more (1.03x on one row), one thread, idle machine: that is about
// 1.25 G vdpbf16ps per second, a quarter of the 5.2 G FMAs per second the
// fp32 kernel issues, so each instruction's two products do not make up
// for its rate. Whether AMD's Zen 4 and Zen 5 issue vdpbf16ps at their FMA
// rate, and AMX on Intel, are to be measured before this is wired in.
//
// Batch invariance holds as for PackedGemm: each element of C sums its
// depth pairs in order from the bias, whatever the rows around it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/common/eigen_types.h"
#include "core/kernels/packed_gemm.h"

namespace biserve {

// float -> bfloat16 bits, rounding to nearest even (as vcvtneps2bf16 and
// PyTorch's and TensorFlow's conversions do); NaN stays NaN.
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
