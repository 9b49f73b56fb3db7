#include "core/kernels/activation.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/common/eigen_types.h"
#include "core/kernels/vector_math.h"

namespace biserve {
namespace {

constexpr std::array<std::pair<absl::string_view, Activation>, 17> kNames = {{
    {"linear", Activation::kLinear},
    {"tanh", Activation::kTanh},
    {"sigmoid", Activation::kSigmoid},
    {"hard_sigmoid", Activation::kHardSigmoid},
    {"hard_sigmoid_keras3", Activation::kHardSigmoidKeras3},
    {"relu", Activation::kRelu},
    {"relu6", Activation::kRelu6},
    {"elu", Activation::kElu},
    {"selu", Activation::kSelu},
    {"softsign", Activation::kSoftsign},
    {"softplus", Activation::kSoftplus},
    {"swish", Activation::kSwish},
    {"gelu", Activation::kGelu},
    {"exponential", Activation::kExponential},
    {"softmax", Activation::kSoftmax},
    {"log_softmax", Activation::kLogSoftmax},
    // Aliases last, so ActivationName finds the canonical name first.
    {"silu", Activation::kSwish},
}};

// Constants from Klambauer et al. (2017), as Keras uses them.
constexpr float kSeluAlpha = 1.6732632423543772848170429916717f;
constexpr float kSeluScale = 1.0507009873554804934193349852946f;

// Softmax and log-softmax over a row, summing in index order: Eigen's
// vectorised reductions start their packets at the row's first aligned
// address, so the order (and the last bits) would follow where the row sits
// in a batch's buffer.
void Softmax(absl::Span<float> row) {
  if (row.empty()) return;
  const float max = *std::max_element(row.begin(), row.end());
  float sum = 0.0f;
  for (float& v : row) {
    v = std::exp(v - max);
    sum += v;
  }
  for (float& v : row) v /= sum;
}

// x - max - log(sum(exp(x - max))): Keras' and PyTorch's stable form.
void LogSoftmax(absl::Span<float> row) {
  if (row.empty()) return;
  const float max = *std::max_element(row.begin(), row.end());
  float sum = 0.0f;
  for (float& v : row) {
    v -= max;
    sum += std::exp(v);
  }
  const float log_sum = std::log(sum);
  for (float& v : row) v -= log_sum;
}

// The activations that call libm per element, and the row-wise ones.
void ActivateWithLibm(Activation activation, absl::Span<float> row) {
  switch (activation) {
    case Activation::kElu:
      for (float& v : row) v = v > 0.0f ? v : std::expm1(v);
      return;
    case Activation::kSelu:
      for (float& v : row) {
        v = kSeluScale * (v > 0.0f ? v : kSeluAlpha * std::expm1(v));
      }
      return;
    case Activation::kSoftplus:
      // log(1 + e^x) without overflow for large x.
      for (float& v : row) {
        v = std::max(v, 0.0f) + std::log1p(std::exp(-std::abs(v)));
      }
      return;
    case Activation::kSwish:
      for (float& v : row) v = v / (1.0f + std::exp(-v));
      return;
    case Activation::kGelu:
      // Exact (erf) form.
      for (float& v : row) v = 0.5f * v * (1.0f + std::erf(v * 0.70710678f));
      return;
    case Activation::kExponential:
      for (float& v : row) v = std::exp(v);
      return;
    case Activation::kSoftmax:
      Softmax(row);
      return;
    case Activation::kLogSoftmax:
      LogSoftmax(row);
      return;
    default:
      break;
  }
}

}  // namespace

absl::StatusOr<Activation> ParseActivation(absl::string_view name) {
  for (const auto& [known, activation] : kNames) {
    if (name == known) return activation;
  }
  std::vector<absl::string_view> names;
  for (const auto& entry : kNames) names.push_back(entry.first);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown activation '", name,
                   "'; expected one of: ", absl::StrJoin(names, ", ")));
}

absl::string_view ActivationName(Activation activation) {
  for (const auto& [name, known] : kNames) {
    if (known == activation) return name;
  }
  return "unknown";
}

// Every activation is a plain loop over the row, each element computed the
// same way wherever the row sits in memory: batch invariance. (Eigen's
// array expressions compute an unaligned row's first and last elements with
// scalar code and the rest with packets, whose exp and logistic differ from
// the scalar ones in the last bits, so a row's result followed its address.)
// tanh and sigmoid, the recurrences' own, are vectorised loops of our own
// (vector_math.h); the simple ones vectorise as they are; the rest call
// libm per element.
void Activate(Activation activation, absl::Span<float> row) {
  float* x = row.data();
  const int64_t n = static_cast<int64_t>(row.size());
  switch (activation) {
    case Activation::kLinear:
      return;
    case Activation::kTanh:
      TanhInPlace(x, n);
      return;
    case Activation::kSigmoid:
      SigmoidInPlace(x, n);
      return;
    case Activation::kHardSigmoid:
      for (int64_t i = 0; i < n; ++i) {
        x[i] = std::min(std::max(0.2f * x[i] + 0.5f, 0.0f), 1.0f);
      }
      return;
    case Activation::kHardSigmoidKeras3:
      for (int64_t i = 0; i < n; ++i) {
        x[i] = std::min(std::max(x[i] * (1.0f / 6.0f) + 0.5f, 0.0f), 1.0f);
      }
      return;
    case Activation::kRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0f);
      return;
    case Activation::kRelu6:
      for (int64_t i = 0; i < n; ++i) {
        x[i] = std::min(std::max(x[i], 0.0f), 6.0f);
      }
      return;
    case Activation::kSoftsign:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::abs(x[i]));
      return;
    case Activation::kElu:
    case Activation::kSelu:
    case Activation::kSoftplus:
    case Activation::kSwish:
    case Activation::kGelu:
    case Activation::kExponential:
    case Activation::kSoftmax:
    case Activation::kLogSoftmax:
      ActivateWithLibm(activation, row);
      return;
  }
}

}  // namespace biserve
