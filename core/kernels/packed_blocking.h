// The blocking PackedGemm and PackedGemmBf16 share: how many rows of a
// pass over all panels at once, and the row blocks each panel is computed
// in. One owner, so that the two kernels block alike.
#pragma once

#include <cstdint>
#include <type_traits>

namespace biserve {

// Rows of a per pass over all panels. Each panel reads every row of a it is
// given; a chunk of 96 rows (96 KB at depth 256) stays in L2 across the
// panels, where all 6,400 rows of a W3 projection (6.5 MB) would come from
// L3 once per panel. Measured on the Intel AVX-512 machine, one thread,
// [6400 x 256] x [256 x 1024]: 95 GFLOP/s unchunked, 140-153 chunked by
// 48 to 192 rows (depth blocks 96 to 128); 1024^3: 115 vs 130-140.
inline constexpr int64_t kRowChunk = 96;

// Depths per pass over the rows: 128 panel rows are 32 KB, which stay in L1
// while every row block of c streams past them (a whole 256-deep panel,
// 64 KB, would come from L2 once per row block).
inline constexpr int64_t kDepthBlock = 128;

// Calls block(std::integral_constant<int, R>(), r) for row blocks [r, r + R)
// covering [0, m) in order: blocks of 6 (24 zmm accumulators, the most the
// AVX-512 kernels hold), then at most one each of 4, 2 and 1. Each row's
// sums do not depend on the block it falls in.
template <typename Block>
inline void ForEachRowBlock(int64_t m, Block&& block) {
  int64_t r = 0;
  for (; r + 6 <= m; r += 6) block(std::integral_constant<int, 6>(), r);
  if (m - r >= 4) {
    block(std::integral_constant<int, 4>(), r);
    r += 4;
  }
  if (m - r >= 2) {
    block(std::integral_constant<int, 2>(), r);
    r += 2;
  }
  if (m - r == 1) block(std::integral_constant<int, 1>(), r);
}

}  // namespace biserve
