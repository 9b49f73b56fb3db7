#include "core/kernels/vector_math.h"

#include <algorithm>

namespace biserve {
namespace {

// tanh(x) ~ x P(x^2) / Q(x^2) on [-7.9, 7.9] (beyond, tanh is +-1 in
// float): the minimax rational approximation Eigen uses for float
// (generic_fast_tanh_float), written as a plain loop body that the compiler
// vectorises for each clone.
inline float FastTanh(float value) {
  const float x =
      std::clamp(value, -7.90531110763549805f, 7.90531110763549805f);
  const float x2 = x * x;
  float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
  p = x2 * p + -8.60467152213735e-11f;
  p = x2 * p + 5.12229709037114e-08f;
  p = x2 * p + 1.48572235717979e-05f;
  p = x2 * p + 6.37261928875436e-04f;
  p = x2 * p + 4.89352455891786e-03f;
  p = x * p;
  float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
  q = x2 * q + 2.26843463243900e-03f;
  q = x2 * q + 4.89352518554385e-03f;
  return p / q;
}

}  // namespace

BISERVE_CLONES void TanhInPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = FastTanh(x[i]);
}

BISERVE_CLONES void SigmoidInPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f + 0.5f * FastTanh(0.5f * x[i]);
}

}  // namespace biserve
