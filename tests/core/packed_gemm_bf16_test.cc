#include "core/kernels/packed_gemm_bf16.h"

#include <cmath>
#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace biserve {
namespace {

TEST(Bfloat16Test, RoundsToNearestEven) {
  EXPECT_EQ(ToBfloat16(1.0f), 0x3f80);
  // bf16 keeps 7 fraction bits: 1 + 2^-8 is a tie, kept even (down);
  // 1 + 3 * 2^-8 is a tie too, rounded up to the even 1 + 2^-6.
  EXPECT_EQ(ToBfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(ToBfloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(ToBfloat16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -12)),
            0x3f81);
  EXPECT_EQ(ToBfloat16(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(
      FromBfloat16(ToBfloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(FromBfloat16(ToBfloat16(std::numeric_limits<float>::infinity())),
            std::numeric_limits<float>::infinity());
  // The largest float rounds up, past bf16's largest finite value.
  EXPECT_EQ(FromBfloat16(ToBfloat16(std::numeric_limits<float>::max())),
            std::numeric_limits<float>::infinity());
  // float32 subnormals flush to a signed zero, as vcvtne2ps2bf16 does.
  EXPECT_EQ(ToBfloat16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(ToBfloat16(-std::ldexp(1.0f, -127)), 0x8000);
  EXPECT_EQ(ToBfloat16(std::numeric_limits<float>::min()), 0x0080);
  for (float v : {0.0f, 0.5f, -3.25f, std::ldexp(1.0f, -70), 65536.0f}) {
    EXPECT_EQ(FromBfloat16(ToBfloat16(v)), v) << "exact in bf16: " << v;
  }
}

// The rounded inputs' exact product (in double), and the sum of |terms|
// that bounds float32 accumulation error.
void ReferenceOfRounded(const RowMatrix& a, const RowMatrix& b,
                        const RowVector& bias, int64_t r, int64_t j,
                        double* exact, double* magnitude) {
  *exact = bias.size() > 0 ? bias(j) : 0.0;
  *magnitude = std::abs(*exact);
  for (int64_t k = 0; k < b.rows(); ++k) {
    const double term = double{FromBfloat16(ToBfloat16(a(r, k)))} *
                        FromBfloat16(ToBfloat16(b(k, j)));
    *exact += term;
    *magnitude += std::abs(term);
  }
}

class PackedGemmBf16Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PackedGemmBf16Available()) {
      GTEST_SKIP() << "no AVX512_BF16 on this CPU (or held below AVX-512)";
    }
  }
};

// The kernel rounds a's rows with vcvtne2ps2bf16, 32 at a time with masked
// tails: a times the identity gives back exactly ToBfloat16 of each value,
// ties and subnormals included, at every depth position.
TEST_F(PackedGemmBf16Test, RoundsInputsAsToBfloat16Does) {
  for (int k : {1, 2, 15, 16, 17, 31, 32, 33, 77, 130}) {
    RowMatrix a(1, k);
    std::mt19937 rng(k);
    std::uniform_real_distribution<float> value(-4.0f, 4.0f);
    for (int j = 0; j < k; ++j) {
      switch (j % 5) {
        case 0:  // a tie, to be rounded to even
          a(0, j) = 1.0f + (1 + 2 * (j % 3)) * std::ldexp(1.0f, -8);
          break;
        case 1:
          a(0, j) = std::numeric_limits<float>::denorm_min() * (j + 1);
          break;
        default:
          a(0, j) = value(rng);
      }
    }
    const PackedMatrixBf16 identity(RowMatrix::Identity(k, k));
    RowMatrix c(1, identity.padded_cols());
    PackedGemmBf16(a.data(), k, 1, identity, c.data(), c.cols());
    for (int j = 0; j < k; ++j) {
      ASSERT_EQ(c(0, j), FromBfloat16(ToBfloat16(a(0, j))))
          << "depth " << k << ", value " << j << ": " << a(0, j);
    }
  }
}

TEST_F(PackedGemmBf16Test, SumsTheRoundedProductsInFloat32) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> size(1, 150);
  for (int trial = 0; trial < 40; ++trial) {
    // Odd depths (a last pair half zero), past a pair block (128 depths),
    // ragged columns, several row chunks (96 rows).
    const int m = trial < 6 ? trial + 1 : size(rng) * (1 + trial % 2);
    const int k = trial % 4 == 3 ? 128 * (1 + trial % 3) + 1 : size(rng) * 2;
    const int n = size(rng) + (trial % 3) * 64;
    const RowMatrix a = RowMatrix::Random(m, k + 3);  // lda > k
    const RowMatrix b = RowMatrix::Random(k, n);
    const RowVector bias =
        trial % 2 ? RowVector(RowVector::Random(n)) : RowVector();
    const PackedMatrixBf16 packed(b, bias);
    RowMatrix c(m, packed.padded_cols() + 5);  // ldc > padded columns
    PackedGemmBf16(a.data(), a.cols(), m, packed, c.data(), c.cols());
    const RowMatrix a_k = a.leftCols(k);
    for (int r = 0; r < m; ++r) {
      for (int j = 0; j < n; ++j) {
        double exact, magnitude;
        ReferenceOfRounded(a_k, b, bias, r, j, &exact, &magnitude);
        // k float32 additions, each off by half an ulp at most.
        ASSERT_NEAR(c(r, j), exact, 1e-7 * k * magnitude + 1e-30)
            << m << " x " << k << " x " << n << " at " << r << ", " << j;
      }
    }
  }
}

TEST_F(PackedGemmBf16Test, IsWithinBfloat16PrecisionOfFloat32) {
  const RowMatrix a = RowMatrix::Random(37, 300);
  const RowMatrix b = RowMatrix::Random(300, 200);
  const PackedMatrixBf16 packed(b);
  RowMatrix c(37, packed.padded_cols());
  PackedGemmBf16(a.data(), a.cols(), 37, packed, c.data(), c.cols());
  const RowMatrix fp32 = a * b;
  const RowMatrix magnitude = a.cwiseAbs() * b.cwiseAbs();
  // Each input off by 2^-9 relative at most, so each product by 2^-8.
  const float worst =
      ((c.leftCols(200) - fp32).cwiseAbs().array() / magnitude.array())
          .maxCoeff();
  EXPECT_LE(worst, std::ldexp(1.0f, -8));
  EXPECT_GT(worst, 0.0f) << "bf16 rounding should show";
}

TEST_F(PackedGemmBf16Test, EachRowGetsTheSameBitsAloneAsInABatch) {
  for (const auto& [m, k] : {std::pair{13, 7}, std::pair{13, 128},
                             std::pair{13, 257}, std::pair{200, 300}}) {
    const RowMatrix a = RowMatrix::Random(m, k);
    const PackedMatrixBf16 packed(RowMatrix::Random(k, 150),
                                  RowVector::Random(150));
    RowMatrix together(m, packed.padded_cols());
    PackedGemmBf16(a.data(), k, m, packed, together.data(), together.cols());
    for (int r = 0; r < m; ++r) {
      RowMatrix alone(1, packed.padded_cols());
      PackedGemmBf16(a.row(r).data(), k, 1, packed, alone.data(), alone.cols());
      for (int j = 0; j < 150; ++j) {
        ASSERT_EQ(alone(0, j), together(r, j))
            << "row " << r << ", column " << j << ", depth " << k;
      }
    }
  }
}

}  // namespace
}  // namespace biserve
