// Element-wise float kernels for the recurrence's per-step work, compiled for
// several x86-64 levels (x86-64-v4: AVX-512; v3: AVX2 and FMA; baseline)
// with the best one picked when the program loads (GCC function
// multiversioning). The portable build thus uses the CPU's widest vectors
// around the GEMMs, as -march=native would: measured, the element-wise work
// was a quarter of W3's time in SSE2.
#pragma once

#include <cstdint>

// Marks a function to be compiled for each x86-64 level, the best clone
// chosen at load time; nothing elsewhere.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(BISERVE_NO_MULTIVERSIONING)
#define BISERVE_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BISERVE_CLONES
#endif

namespace biserve {

// x = tanh(x), to within 5e-7 (a few float ulps; the exact error depends on
// FMA use in the chosen clone) (a rational approximation, clamped where
// tanh is 1 in float).
void TanhInPlace(float* x, int64_t n);

// x = 1 / (1 + exp(-x)), as 0.5 + 0.5 tanh(x / 2).
void SigmoidInPlace(float* x, int64_t n);

}  // namespace biserve
