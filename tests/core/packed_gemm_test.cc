#include "core/kernels/packed_gemm.h"

#include <cstdlib>
#include <random>
#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace biserve {
namespace {

// ctest runs the kernel tests again as .avx2 and .no_packed: each must run
// the kernel set it names, or the three paths are not all tested.
TEST(PackedGemmTest, RunsTheKernelSetBiservePackedIsaAsks) {
  const char* cap = std::getenv("BISERVE_PACKED_ISA");
  const std::string isa = PackedGemmIsa();
  if (cap == nullptr || *cap == '\0') {
    EXPECT_TRUE(isa == "avx512" || isa == "avx2" || isa == "portable") << isa;
  } else if (std::string(cap) == "none") {
    EXPECT_EQ(isa, "portable");
  } else if (std::string(cap) == "avx2") {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      EXPECT_EQ(isa, "avx2");
    }
#endif
  }
}

TEST(PackedGemmTest, MatchesAPlainProductForRaggedShapes) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> size(1, 150);
  for (int trial = 0; trial < 60; ++trial) {
    // Odd row counts too, and several row chunks (96) with a ragged last.
    const int m = trial < 8 ? trial + 1 : size(rng) * (1 + trial % 3);
    // Depths past one depth block (128) too, and exact multiples of it.
    const int k =
        trial % 5 == 4 ? 128 * (1 + trial % 3) : size(rng) * (1 + trial % 4);
    const int n = size(rng) + (trial % 3) * 64;
    const RowMatrix a = RowMatrix::Random(m, k + 3);  // lda > k
    const RowMatrix b = RowMatrix::Random(k, n);
    const PackedMatrix packed(b);
    ASSERT_EQ(packed.padded_cols() % PackedMatrix::kPanel, 0);
    ASSERT_GE(packed.padded_cols(), n);
    RowMatrix c(m, packed.padded_cols() + 5);  // ldc > padded columns
    c.setConstant(NAN);
    PackedGemm(a.data(), a.cols(), m, packed, c.data(), c.cols());
    const RowMatrix expected = a.leftCols(k) * b;
    const float diff = (c.leftCols(n) - expected).cwiseAbs().maxCoeff();
    EXPECT_LT(diff, 1e-4f) << m << " x " << k << " x " << n;
  }
}

TEST(PackedGemmTest, AddsTheBiasRowToEveryRow) {
  for (const int m : {1, 5, 6, 97, 250}) {
    for (const int k : {1, 130, 300}) {
      const int n = 150;  // a ragged last panel, whose padding stays zero
      const RowMatrix a = RowMatrix::Random(m, k);
      const RowMatrix b = RowMatrix::Random(k, n);
      const RowVector bias = RowVector::Random(n) * 10.0f;
      const PackedMatrix packed(b, bias);
      RowMatrix c(m, packed.padded_cols());
      PackedGemm(a.data(), k, m, packed, c.data(), c.cols());
      RowMatrix expected = a * b;
      expected.rowwise() += bias;
      const float diff = (c.leftCols(n) - expected).cwiseAbs().maxCoeff();
      EXPECT_LT(diff, 1e-4f) << m << " x " << k;
      EXPECT_EQ(c.rightCols(c.cols() - n).cwiseAbs().maxCoeff(), 0.0f)
          << "padding columns picked up a bias";
      EXPECT_EQ(PackedMatrix(b).bias(0), nullptr);
    }
  }
}

// A row of c gets the same bits whichever rows it is computed with (row
// blocks of 6, 4, 2 or 1; depth blocks; row chunks): that is what lets a
// batched sequence equal the same sequence evaluated alone, exactly.
TEST(PackedGemmTest, EachRowGetsTheSameBitsAloneAsInABatch) {
  // 13 rows: blocks of 6, 6 and a single row; 200: three row chunks.
  for (const auto& [m, k] :
       {std::pair{13, 7}, std::pair{13, 128}, std::pair{13, 200},
        std::pair{13, 517}, std::pair{200, 300}}) {
    const RowMatrix a = RowMatrix::Random(m, k);
    const PackedMatrix packed(RowMatrix::Random(k, 150),
                              RowVector::Random(150));
    RowMatrix together(m, packed.padded_cols());
    PackedGemm(a.data(), k, m, packed, together.data(), together.cols());
    for (int r = 0; r < m; ++r) {
      RowMatrix alone(1, packed.padded_cols());
      PackedGemm(a.row(r).data(), k, 1, packed, alone.data(), alone.cols());
      for (int j = 0; j < 150; ++j) {
        ASSERT_EQ(alone(0, j), together(r, j))
            << "row " << r << ", column " << j << ", depth " << k;
      }
      // And as the second row of a pair (a block of 2).
      if (r + 1 < m) {
        RowMatrix pair(2, packed.padded_cols());
        PackedGemm(a.row(r).data(), k, 2, packed, pair.data(), pair.cols());
        for (int j = 0; j < 150; ++j) ASSERT_EQ(pair(1, j), together(r + 1, j));
      }
    }
  }
}

}  // namespace
}  // namespace biserve
