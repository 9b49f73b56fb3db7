#include "core/kernels/packed_gemm_bf16.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "core/kernels/packed_blocking.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BISERVE_BF16_KERNELS 1
#endif

namespace biserve {

uint16_t ToBfloat16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  // Subnormals flush to a signed zero, as vcvtne2ps2bf16 does.
  if ((bits & 0x7f800000u) == 0) {
    return static_cast<uint16_t>((bits >> 16) & 0x8000);
  }
  // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit.
  const uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float FromBfloat16(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

PackedMatrixBf16::PackedMatrixBf16(const RowMatrix& b, const RowVector& bias)
    : rows_(b.rows()),
      cols_(b.cols()),
      panels_((b.cols() + kPanel - 1) / kPanel),
      data_(panels_ * pairs() * kPanel, 0u) {
  for (int64_t p = 0; p < panels_; ++p) {
    const int64_t width = std::min<int64_t>(kPanel, cols_ - p * kPanel);
    for (int64_t q = 0; q < pairs(); ++q) {
      uint32_t* out = data_.data() + (p * pairs() + q) * kPanel;
      for (int64_t j = 0; j < width; ++j) {
        const int64_t col = p * kPanel + j;
        const uint32_t low = ToBfloat16(b(2 * q, col));
        const uint32_t high =
            2 * q + 1 < rows_ ? ToBfloat16(b(2 * q + 1, col)) : 0u;
        out[j] = low | (high << 16);
      }
    }
  }
  if (bias.size() > 0) {
    bias_.assign(panels_ * kPanel, 0.0f);
    std::memcpy(bias_.data(), bias.data(),
                std::min<int64_t>(bias.size(), cols_) * sizeof(float));
  }
}

namespace {

// Depth pairs per pass over the rows: PackedGemm's depth block (a 64-pair
// block of a panel is 16 KB). Rows are chunked and blocked as PackedGemm's.
constexpr int64_t kPairBlock = kDepthBlock / 2;

// Rows of a as bf16 pairs, [m, pairs] words: a[r][2q] in the low half of
// word q, a[r][2q + 1] (or zero past the depth) in the high half. The
// kernels below use PairRowsBf16 (the same bits, 32 values per
// instruction: the scalar loop was up to a quarter of a small product).
[[maybe_unused]] void PairRows(const float* a, int64_t lda, int64_t m,
                               int64_t depth, int64_t pairs,
                               std::vector<uint32_t>& out) {
  out.resize(m * pairs);
  for (int64_t r = 0; r < m; ++r) {
    const float* row = a + r * lda;
    uint32_t* words = out.data() + r * pairs;
    for (int64_t q = 0; q < pairs; ++q) {
      const uint32_t low = ToBfloat16(row[2 * q]);
      const uint32_t high = 2 * q + 1 < depth ? ToBfloat16(row[2 * q + 1]) : 0u;
      words[q] = low | (high << 16);
    }
  }
}

#ifdef BISERVE_BF16_KERNELS

// Rows [0, R) of one panel over depth pairs [q0, q1), as Rows512 in
// packed_gemm.cc: R x 64 columns in 4R zmm accumulators, each step one
// vdpbf16ps per accumulator (two depths at once).
template <int R>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void
RowsBf16(const uint32_t* a, int64_t pairs, const uint32_t* b, int64_t q0,
         int64_t q1, float* c, int64_t ldc, bool accumulate,
         const float* init) {
  __m512 acc[R][4];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < 4; ++j) {
      acc[i][j] = accumulate        ? _mm512_loadu_ps(c + i * ldc + 16 * j)
                  : init != nullptr ? _mm512_load_ps(init + 16 * j)
                                    : _mm512_setzero_ps();
    }
  }
  for (int64_t q = q0; q < q1; ++q) {
    const uint32_t* bq = b + q * 64;
    __m512bh bv[4];
    for (int j = 0; j < 4; ++j) {
      bv[j] = (__m512bh)_mm512_load_si512(bq + 16 * j);
    }
    for (int i = 0; i < R; ++i) {
      const __m512bh x =
          (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i * pairs + q]));
      for (int j = 0; j < 4; ++j) {
        acc[i][j] = _mm512_dpbf16_ps(acc[i][j], x, bv[j]);
      }
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < 4; ++j) {
      _mm512_storeu_ps(c + i * ldc + 16 * j, acc[i][j]);
    }
  }
}

// PairRows on vcvtne2ps2bf16: 32 floats (16 words) at a time, the tail
// through masked loads that read zeros past the depth.
__attribute__((target("avx512f,avx512bf16"))) void PairRowsBf16(
    const float* a, int64_t lda, int64_t m, int64_t depth, int64_t pairs,
    std::vector<uint32_t>& out) {
  out.resize(m * pairs);
  for (int64_t r = 0; r < m; ++r) {
    const float* row = a + r * lda;
    uint32_t* words = out.data() + r * pairs;
    for (int64_t d = 0; d < depth; d += 32) {
      const int64_t left = depth - d;
      const __mmask16 low_mask =
          left >= 16 ? __mmask16{0xffff} : (__mmask16{1} << left) - 1;
      const __mmask16 high_mask = left >= 32 ? __mmask16{0xffff}
                                  : left <= 16
                                      ? __mmask16{0}
                                      : (__mmask16{1} << (left - 16)) - 1;
      const __m512 low = _mm512_maskz_loadu_ps(low_mask, row + d);
      const __m512 high = _mm512_maskz_loadu_ps(high_mask, row + d + 16);
      const __m512i pair = (__m512i)_mm512_cvtne2ps_pbh(high, low);
      const int64_t count = std::min<int64_t>(16, pairs - d / 2);
      _mm512_mask_storeu_epi32(
          words + d / 2,
          count >= 16 ? __mmask16{0xffff} : (__mmask16{1} << count) - 1, pair);
    }
  }
}

// One panel: pair blocks outside, row blocks of 6 (then 4, 2, 1) inside.
__attribute__((target("avx512f,avx512bf16"))) void PanelBf16(
    const uint32_t* a, int64_t pairs, int64_t m, const uint32_t* b,
    const float* bias, float* c, int64_t ldc) {
  for (int64_t q0 = 0; q0 < pairs; q0 += kPairBlock) {
    const int64_t q1 = std::min(pairs, q0 + kPairBlock);
    const bool accumulate = q0 > 0;
    ForEachRowBlock(
        m, [&](auto rows,
               int64_t r) __attribute__((target("avx512f,avx512bf16"))) {
          RowsBf16<decltype(rows)::value>(a + r * pairs, pairs, b, q0, q1,
                                          c + r * ldc, ldc, accumulate, bias);
        });
  }
}

bool DetectBf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") &&
         std::strcmp(PackedGemmIsa(), "avx512") == 0;
}

#else

bool DetectBf16() { return false; }

void PanelBf16(const uint32_t*, int64_t, int64_t, const uint32_t*, const float*,
               float*, int64_t) {}

void PairRowsBf16(const float* a, int64_t lda, int64_t m, int64_t depth,
                  int64_t pairs, std::vector<uint32_t>& out) {
  PairRows(a, lda, m, depth, pairs, out);
}

#endif

}  // namespace

bool PackedGemmBf16Available() {
  static const bool available = DetectBf16();
  return available;
}

const char* PackedGemmBf16Isa() {
  return PackedGemmBf16Available() ? "avx512_bf16" : "none";
}

void PackedGemmBf16(const float* a, int64_t lda, int64_t m,
                    const PackedMatrixBf16& b, float* c, int64_t ldc) {
  // One conversion per call: the rows of a, in pairs, reused by every panel.
  thread_local std::vector<uint32_t> paired;
  for (int64_t r = 0; r < m; r += kRowChunk) {
    const int64_t rows = std::min(kRowChunk, m - r);
    PairRowsBf16(a + r * lda, lda, rows, b.rows(), b.pairs(), paired);
    for (int64_t p = 0; p < b.panels(); ++p) {
      PanelBf16(paired.data(), b.pairs(), rows, b.panel(p), b.bias(p),
                c + r * ldc + p * PackedMatrixBf16::kPanel, ldc);
    }
  }
}

}  // namespace biserve
