#include "core/packed_gemm.h"

#include <random>

#include "gtest/gtest.h"

namespace biserve {
namespace {

TEST(PackedGemmTest, MatchesAPlainProductForRaggedShapes) {
  if (!PackedGemmAvailable()) GTEST_SKIP() << "no AVX2/AVX-512 on this CPU";
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> size(1, 150);
  for (int trial = 0; trial < 60; ++trial) {
    const int m = trial < 8 ? trial + 1 : size(rng);  // odd row counts too
    // Depths past one depth block (96) too, and exact multiples of it.
    const int k =
        trial % 5 == 4 ? 96 * (1 + trial % 3) : size(rng) * (1 + trial % 4);
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

// A row of c gets the same bits whichever rows it is computed with (row
// blocks of 6, 4, 2 or 1; depth blocks): that is what lets a batched
// sequence equal the same sequence evaluated alone, exactly.
TEST(PackedGemmTest, EachRowGetsTheSameBitsAloneAsInABatch) {
  if (!PackedGemmAvailable()) GTEST_SKIP() << "no AVX2/AVX-512 on this CPU";
  for (const int k : {7, 96, 200, 517}) {
    const int m = 13;  // blocks of 6, 6 and a single row
    const RowMatrix a = RowMatrix::Random(m, k);
    const PackedMatrix packed(RowMatrix::Random(k, 150));
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
