#include "core/activation.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace biserve {
namespace {

constexpr std::array<std::pair<absl::string_view, Activation>, 16> kNames = {{
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
    // Aliases last, so ActivationName finds the canonical name first.
    {"silu", Activation::kSwish},
}};

// Constants from Klambauer et al. (2017), as Keras uses them.
constexpr float kSeluAlpha = 1.6732632423543772848170429916717f;
constexpr float kSeluScale = 1.0507009873554804934193349852946f;

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

template <typename F>
void ForEach(absl::Span<float> row, F f) {
  for (float& v : row) v = f(v);
}

void Softmax(absl::Span<float> row) {
  if (row.empty()) return;
  const float max = *std::max_element(row.begin(), row.end());
  float sum = 0.0f;
  for (float& v : row) {
    v = std::exp(v - max);
    sum += v;
  }
  const float inv = 1.0f / sum;
  for (float& v : row) v *= inv;
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

void Activate(Activation activation, absl::Span<float> row) {
  switch (activation) {
    case Activation::kLinear:
      return;
    case Activation::kTanh:
      return ForEach(row, [](float x) { return std::tanh(x); });
    case Activation::kSigmoid:
      return ForEach(row, Sigmoid);
    case Activation::kHardSigmoid:
      return ForEach(
          row, [](float x) { return std::clamp(0.2f * x + 0.5f, 0.0f, 1.0f); });
    case Activation::kHardSigmoidKeras3:
      return ForEach(
          row, [](float x) { return std::clamp(x / 6.0f + 0.5f, 0.0f, 1.0f); });
    case Activation::kRelu:
      return ForEach(row, [](float x) { return std::max(x, 0.0f); });
    case Activation::kRelu6:
      return ForEach(row, [](float x) { return std::clamp(x, 0.0f, 6.0f); });
    case Activation::kElu:
      return ForEach(row, [](float x) { return x > 0 ? x : std::expm1(x); });
    case Activation::kSelu:
      return ForEach(row, [](float x) {
        return kSeluScale * (x > 0 ? x : kSeluAlpha * std::expm1(x));
      });
    case Activation::kSoftsign:
      return ForEach(row, [](float x) { return x / (1.0f + std::abs(x)); });
    case Activation::kSoftplus:
      // log(1 + e^x) without overflow for large x.
      return ForEach(row, [](float x) {
        return std::max(x, 0.0f) + std::log1p(std::exp(-std::abs(x)));
      });
    case Activation::kSwish:
      return ForEach(row, [](float x) { return x * Sigmoid(x); });
    case Activation::kGelu:
      return ForEach(row, [](float x) {
        return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
      });
    case Activation::kExponential:
      return ForEach(row, [](float x) { return std::exp(x); });
    case Activation::kSoftmax:
      return Softmax(row);
  }
}

}  // namespace biserve
