#include "bench/workloads.h"

#include <cmath>
#include <random>

namespace biserve::bench {
namespace {

constexpr Workload kWorkloads[] = {
    {"W1", false, 16, 32, 20, 1},     {"W1b", false, 64, 128, 50, 1},
    {"W2", false, 64, 128, 50, 32},   {"W3", false, 256, 256, 100, 64},
    {"W3g", true, 256, 256, 100, 64}, {"W4", false, 512, 512, 200, 32},
    {"W5", false, 256, 256, 0, 64},
};

void Fill(std::mt19937& rng, std::vector<int64_t> shape, float scale,
          v1::Tensor* tensor) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  int64_t count = 1;
  for (int64_t d : shape) {
    tensor->add_shape(d);
    count *= d;
  }
  for (int64_t i = 0; i < count; ++i) tensor->add_values(dist(rng));
}

}  // namespace

absl::Span<const Workload> Workloads() { return kWorkloads; }

v1::Model WorkloadModel(const Workload& w) {
  std::mt19937 rng(42);
  const int64_t g = w.gru ? 3 : 4;
  // Weights of about 1/sqrt(fan-in) keep the recurrence out of saturation.
  const float scale = 1.0f / std::sqrt(static_cast<float>(w.units));
  auto weights = [&](v1::RnnWeights* out) {
    Fill(rng, {w.input, g * w.units}, scale, out->mutable_kernel());
    Fill(rng, {w.units, g * w.units}, scale, out->mutable_recurrent_kernel());
    if (w.gru) {
      Fill(rng, {2, g * w.units}, 0.1f, out->mutable_bias());
    } else {
      Fill(rng, {g * w.units}, 0.1f, out->mutable_bias());
    }
  };
  v1::Model model;
  model.set_name(w.name);
  model.set_input_dim(w.input);
  v1::BidirectionalLayer* bidi = model.add_layers()->mutable_bidirectional();
  bidi->set_name("bidirectional");
  v1::RnnLayer* layer = bidi->mutable_layer();
  layer->set_name(w.gru ? "gru" : "lstm");
  layer->set_cell(w.gru ? v1::GRU : v1::LSTM);
  layer->set_units(w.units);
  layer->set_return_sequences(true);
  weights(layer->mutable_weights());
  weights(bidi->mutable_backward_weights());
  bidi->set_merge_mode("concat");
  return model;
}

std::vector<int64_t> WorkloadLengths(const Workload& w) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> length(1, 200);
  std::vector<int64_t> lengths(w.batch);
  for (int64_t& t : lengths) t = w.length > 0 ? w.length : length(rng);
  return lengths;
}

double FlopsPerStep(const Workload& w) {
  return 2.0 * 2 * (w.gru ? 3 : 4) * w.units * (w.input + w.units);
}

}  // namespace biserve::bench
