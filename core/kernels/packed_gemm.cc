#include "core/kernels/packed_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/common/log.h"
#include "core/kernels/packed_blocking.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BISERVE_X86_KERNELS 1
#endif

namespace biserve {

PackedMatrix::PackedMatrix(const RowMatrix& b)
    : rows_(b.rows()),
      cols_(b.cols()),
      panels_((b.cols() + kPanel - 1) / kPanel),
      data_(panels_ * rows_ * kPanel, 0.0f) {
  for (int64_t p = 0; p < panels_; ++p) {
    const int64_t width = std::min<int64_t>(kPanel, cols_ - p * kPanel);
    for (int64_t k = 0; k < rows_; ++k) {
      std::memcpy(data_.data() + (p * rows_ + k) * kPanel, &b(k, p * kPanel),
                  width * sizeof(float));
    }
  }
}

PackedMatrix::PackedMatrix(const RowMatrix& b, const RowVector& bias)
    : PackedMatrix(b) {
  bias_.assign(panels_ * kPanel, 0.0f);
  std::memcpy(bias_.data(), bias.data(),
              std::min<int64_t>(bias.size(), cols_) * sizeof(float));
}

namespace {}  // namespace

#ifdef BISERVE_X86_KERNELS
namespace {

// Rows [0, R) of one panel of c, over depths [k0, k1): R rows x 64 columns
// in 4R zmm accumulators, started from `init` (the panel's bias, or zero when
// null) or, when `accumulate`, from c.
// Every element of c sums its depths in order whatever R is, so a row's
// result does not depend on the rows batched with it: a sequence gets the
// same bits in any batch as alone.
// Each depth step loads the panel row once (4 vectors) and broadcasts R
// values of a: R = 6 holds 24 accumulators, 4 panel vectors and a broadcast
// in the 32 registers, so the panel is read once per 24 FMAs.
template <int R>
__attribute__((target("avx512f"), always_inline)) inline void Rows512(
    const float* a, int64_t lda, const float* b, int64_t k0, int64_t k1,
    float* c, int64_t ldc, bool accumulate, const float* init) {
  __m512 acc[R][4];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < 4; ++j) {
      acc[i][j] = accumulate        ? _mm512_loadu_ps(c + i * ldc + 16 * j)
                  : init != nullptr ? _mm512_load_ps(init + 16 * j)
                                    : _mm512_setzero_ps();
    }
  }
  for (int64_t k = k0; k < k1; ++k) {
    const float* bk = b + k * 64;
    const __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16),
                 b2 = _mm512_loadu_ps(bk + 32), b3 = _mm512_loadu_ps(bk + 48);
    for (int i = 0; i < R; ++i) {
      const __m512 x = _mm512_set1_ps(a[i * lda + k]);
      acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(x, b2, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(x, b3, acc[i][3]);
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < 4; ++j) {
      _mm512_storeu_ps(c + i * ldc + 16 * j, acc[i][j]);
    }
  }
}

// One panel of c = a * b: depth blocks outside, row blocks of 6 (then 4,
// 2, 1) inside.
__attribute__((target("avx512f"))) void Panel512(const float* a, int64_t lda,
                                                 int64_t m, const float* b,
                                                 const float* bias,
                                                 int64_t depth, float* c,
                                                 int64_t ldc) {
  for (int64_t k0 = 0; k0 < depth; k0 += kDepthBlock) {
    const int64_t k1 = std::min(depth, k0 + kDepthBlock);
    const bool accumulate = k0 > 0;
    ForEachRowBlock(
        m, [&](auto rows, int64_t r) __attribute__((target("avx512f"))) {
          Rows512<decltype(rows)::value>(a + r * lda, lda, b, k0, k1,
                                         c + r * ldc, ldc, accumulate, bias);
        });
  }
}

// The AVX2 version: R rows x 16 columns (columns j0 .. j0 + 15 of the
// panel) in 2R ymm accumulators, over depths [k0, k1), started as Rows512's.
// R = 6 holds 12 accumulators, 2 panel vectors and a broadcast in the 16
// registers. Every element sums its depths in order, whatever R is.
template <int R>
__attribute__((target("avx2,fma"), always_inline)) inline void Rows256(
    const float* a, int64_t lda, const float* b, int64_t k0, int64_t k1,
    float* c, int64_t ldc, bool accumulate, const float* init) {
  __m256 acc[R][2];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < 2; ++j) {
      acc[i][j] = accumulate        ? _mm256_loadu_ps(c + i * ldc + 8 * j)
                  : init != nullptr ? _mm256_load_ps(init + 8 * j)
                                    : _mm256_setzero_ps();
    }
  }
  for (int64_t k = k0; k < k1; ++k) {
    const float* bk = b + k * 64;
    const __m256 b0 = _mm256_loadu_ps(bk), b1 = _mm256_loadu_ps(bk + 8);
    for (int i = 0; i < R; ++i) {
      const __m256 x = _mm256_broadcast_ss(a + i * lda + k);
      acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < 2; ++j) {
      _mm256_storeu_ps(c + i * ldc + 8 * j, acc[i][j]);
    }
  }
}

// One row of one panel in AVX2, all 64 columns in 8 ymm accumulators: for
// the rows left over by the blocks of 6 and 4, where a 16-column slab would
// leave 2 accumulators to wait on FMA latency (measured, one row [1 x 128] x
// [128 x 512]: 30 GFLOP/s in slabs, 53 like this).
__attribute__((target("avx2,fma"), always_inline)) inline void Row256(
    const float* a, const float* b, int64_t k0, int64_t k1, float* c,
    bool accumulate, const float* init) {
  __m256 acc[8];
  for (int j = 0; j < 8; ++j) {
    acc[j] = accumulate        ? _mm256_loadu_ps(c + 8 * j)
             : init != nullptr ? _mm256_load_ps(init + 8 * j)
                               : _mm256_setzero_ps();
  }
  for (int64_t k = k0; k < k1; ++k) {
    const __m256 x = _mm256_broadcast_ss(a + k);
    for (int j = 0; j < 8; ++j) {
      acc[j] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + k * 64 + 8 * j), acc[j]);
    }
  }
  for (int j = 0; j < 8; ++j) _mm256_storeu_ps(c + 8 * j, acc[j]);
}

// One panel of c = a * b in AVX2: depth blocks outside; inside, 16-column
// slabs (a 128-deep slab of the panel is 8 KB, in L1 while the rows stream
// past) for row blocks of 6 (then 4), then the last rows one at a time
// across the whole panel. Measured on the Intel AVX-512 machine held to
// AVX2, one thread: [6400 x 256] x [256 x 1024] 80 GFLOP/s (45 with 2-row
// blocks across the panel), [32 x 512] x [512 x 2048] 67 (48).
__attribute__((target("avx2,fma"))) void Panel256(const float* a, int64_t lda,
                                                  int64_t m, const float* b,
                                                  const float* bias,
                                                  int64_t depth, float* c,
                                                  int64_t ldc) {
  const int64_t sixes = m / 6 * 6;
  const int64_t blocked = m - sixes >= 4 ? sixes + 4 : sixes;
  for (int64_t k0 = 0; k0 < depth; k0 += kDepthBlock) {
    const int64_t k1 = std::min(depth, k0 + kDepthBlock);
    const bool accumulate = k0 > 0;
    for (int j0 = 0; j0 < PackedMatrix::kPanel; j0 += 16) {
      const float* init = bias == nullptr ? nullptr : bias + j0;
      for (int64_t r = 0; r < sixes; r += 6) {
        Rows256<6>(a + r * lda, lda, b + j0, k0, k1, c + r * ldc + j0, ldc,
                   accumulate, init);
      }
      if (blocked > sixes) {
        Rows256<4>(a + sixes * lda, lda, b + j0, k0, k1, c + sixes * ldc + j0,
                   ldc, accumulate, init);
      }
    }
    for (int64_t r = blocked; r < m; ++r) {
      Row256(a + r * lda, b, k0, k1, c + r * ldc, accumulate, bias);
    }
  }
}

}  // namespace
#endif  // BISERVE_X86_KERNELS

namespace {

// The portable version, for CPUs with neither AVX2 nor AVX-512 (and other
// architectures): one row at a time, the panel's 64 columns in a local
// array the compiler keeps in vector registers of the baseline ISA. Each
// element sums its depths in order, so it is batch-invariant too.
void PanelPortable(const float* a, int64_t lda, int64_t m, const float* b,
                   const float* bias, int64_t depth, float* c, int64_t ldc) {
  constexpr int kWidth = PackedMatrix::kPanel;
  for (int64_t r = 0; r < m; ++r) {
    float acc[kWidth];
    for (int j = 0; j < kWidth; ++j) acc[j] = bias != nullptr ? bias[j] : 0.0f;
    const float* ar = a + r * lda;
    for (int64_t k = 0; k < depth; ++k) {
      const float x = ar[k];
      const float* bk = b + k * kWidth;
      for (int j = 0; j < kWidth; ++j) acc[j] += x * bk[j];
    }
    std::memcpy(c + r * ldc, acc, sizeof(acc));
  }
}

enum class Isa { kPortable, kAvx2, kAvx512 };

Isa DetectIsa() {
  Isa isa = Isa::kPortable;
#ifdef BISERVE_X86_KERNELS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    isa = Isa::kAvx512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    isa = Isa::kAvx2;
  }
#endif
  // BISERVE_PACKED_ISA=avx2 or =none caps the kernels below what the CPU
  // runs: so that one machine can test every path, and so that a user can
  // rule them out when chasing a numerical difference.
  const char* cap = std::getenv("BISERVE_PACKED_ISA");
  if (cap == nullptr || *cap == '\0') return isa;
  const std::string value = cap;
  if (value == "none") return Isa::kPortable;
  if (value == "avx2") return isa == Isa::kAvx512 ? Isa::kAvx2 : isa;
  LogWarning(absl::StrCat("BISERVE_PACKED_ISA=", value,
                          " ignored; expected avx2 or none"));
  return isa;
}

// Decided once; the CPU does not change under a running process.
const Isa kIsa = DetectIsa();

// One panel of c on this process's kernel set.
void Panel(const float* a, int64_t lda, int64_t m, const float* b,
           const float* bias, int64_t depth, float* c, int64_t ldc) {
#ifdef BISERVE_X86_KERNELS
  if (kIsa == Isa::kAvx512) return Panel512(a, lda, m, b, bias, depth, c, ldc);
  if (kIsa == Isa::kAvx2) return Panel256(a, lda, m, b, bias, depth, c, ldc);
#endif
  PanelPortable(a, lda, m, b, bias, depth, c, ldc);
}

}  // namespace

const char* PackedGemmIsa() {
  switch (kIsa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kPortable:
      break;
  }
  return "portable";
}

void PackedGemm(const float* a, int64_t lda, int64_t m, const PackedMatrix& b,
                float* c, int64_t ldc) {
  for (int64_t r = 0; r < m; r += kRowChunk) {
    const int64_t rows = std::min(kRowChunk, m - r);
    const float* ar = a + r * lda;
    for (int64_t p = 0; p < b.panels(); ++p) {
      Panel(ar, lda, rows, b.panel(p), b.bias(p), b.rows(),
            c + r * ldc + p * PackedMatrix::kPanel, ldc);
    }
  }
}

}  // namespace biserve
