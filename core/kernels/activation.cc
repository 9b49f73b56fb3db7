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

void Softmax(ArrayMap a) {
  if (a.size() == 0) return;
  a = (a - a.maxCoeff()).exp();
  a /= a.sum();
}

// x - max - log(sum(exp(x - max))): Keras' and PyTorch's stable form.
void LogSoftmax(ArrayMap a) {
  if (a.size() == 0) return;
  a -= a.maxCoeff();
  a -= std::log(a.exp().sum());
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

// Eigen's array functions are vectorised (tanh, logistic and exp as
// rational or polynomial approximations accurate to a few float ulps), which
// is what keeps the element-wise part of a recurrence step cheap.
void Activate(Activation activation, absl::Span<float> row) {
  ArrayMap a(row.data(), static_cast<Eigen::Index>(row.size()));
  switch (activation) {
    case Activation::kLinear:
      return;
    case Activation::kTanh:
      TanhInPlace(row.data(), a.size());
      return;
    case Activation::kSigmoid:
      SigmoidInPlace(row.data(), a.size());
      return;
    case Activation::kHardSigmoid:
      a = (0.2f * a + 0.5f).max(0.0f).min(1.0f);
      return;
    case Activation::kHardSigmoidKeras3:
      a = (a * (1.0f / 6.0f) + 0.5f).max(0.0f).min(1.0f);
      return;
    case Activation::kRelu:
      a = a.max(0.0f);
      return;
    case Activation::kRelu6:
      a = a.max(0.0f).min(6.0f);
      return;
    case Activation::kElu:
      a = (a > 0.0f).select(a, a.expm1());
      return;
    case Activation::kSelu:
      a = kSeluScale * (a > 0.0f).select(a, kSeluAlpha * a.expm1());
      return;
    case Activation::kSoftsign:
      a = a / (1.0f + a.abs());
      return;
    case Activation::kSoftplus:
      // log(1 + e^x) without overflow for large x.
      a = a.max(0.0f) + (-a.abs()).exp().log1p();
      return;
    case Activation::kSwish:
      a = a * a.logistic();
      return;
    case Activation::kGelu:
      // Exact (erf) form; erf is not in Eigen's core array functions.
      for (float& v : row) v = 0.5f * v * (1.0f + std::erf(v * 0.70710678f));
      return;
    case Activation::kExponential:
      a = a.exp();
      return;
    case Activation::kSoftmax:
      Softmax(a);
      return;
    case Activation::kLogSoftmax:
      LogSoftmax(a);
      return;
  }
}

}  // namespace biserve
