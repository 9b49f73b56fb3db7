#include "tests/support/random_model.h"

#include <cmath>
#include <optional>
#include <string>

#include "core/model/model.h"

namespace biserve::testing {
namespace {

int Uniform(std::mt19937& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

bool Coin(std::mt19937& rng, double p = 0.5) {
  return std::bernoulli_distribution(p)(rng);
}

RnnWeightsSpec RandomRnnWeights(std::mt19937& rng, CellType cell, int units,
                                int input_size, bool use_bias,
                                bool reset_after) {
  const int64_t g = GateCount(cell);
  RnnWeightsSpec w;
  w.kernel = RandomWeights(rng, {input_size, g * units});
  w.recurrent_kernel = RandomWeights(rng, {units, g * units});
  if (use_bias) {
    w.bias = reset_after ? RandomWeights(rng, {2, g * units})
                         : RandomWeights(rng, {g * units});
  }
  return w;
}

RnnLayerSpec RandomRnn(std::mt19937& rng, int input_size, bool sequences) {
  static const char* kActivations[] = {"tanh", "relu",   "softsign",
                                       "elu",  "linear", "sigmoid"};
  static const char* kRecurrent[] = {"sigmoid", "hard_sigmoid",
                                     "hard_sigmoid_keras3"};
  RnnLayerSpec spec;
  spec.cell = static_cast<CellType>(Uniform(rng, 1, 3));
  spec.units = Uniform(rng, 1, 10);
  spec.activation = kActivations[Uniform(rng, 0, 5)];
  if (spec.cell != CellType::kSimpleRnn) {
    spec.recurrent_activation = kRecurrent[Uniform(rng, 0, 2)];
  }
  spec.use_bias = Coin(rng, 0.8);
  if (spec.cell == CellType::kGru) spec.reset_after = Coin(rng);
  spec.return_sequences = sequences;
  spec.return_state = Coin(rng);
  spec.weights =
      RandomRnnWeights(rng, spec.cell, spec.units, input_size, *spec.use_bias,
                       spec.cell == CellType::kGru && *spec.reset_after);
  return spec;
}

}  // namespace

std::vector<float> RandomValues(std::mt19937& rng, int64_t count, float scale) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> values(count);
  for (float& v : values) v = dist(rng);
  return values;
}

Tensor RandomWeights(std::mt19937& rng, std::vector<int64_t> shape) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(shape[0]));
  return Tensor{shape, RandomValues(rng, NumElements(shape), scale)};
}

ModelSpec RandomModelSpec(std::mt19937& rng,
                          const RandomModelOptions& options) {
  ModelSpec spec;
  spec.name = "random";
  int width;
  if (options.allow_embedding && Coin(rng, 0.2)) {
    EmbeddingSpec e;
    e.input_dim = Uniform(rng, 2, 20);
    e.output_dim = Uniform(rng, 1, options.max_input_dim);
    e.embeddings = Tensor{{e.input_dim, e.output_dim},
                          RandomValues(rng, e.input_dim * e.output_dim)};
    e.mask_zero = Coin(rng, 0.5);
    width = e.output_dim;
    spec.layers.push_back(e);
  } else {
    spec.input_dim = Uniform(rng, 1, options.max_input_dim);
    width = spec.input_dim;
    if (Coin(rng, 0.2)) {
      spec.layers.push_back(MaskingSpec{"masking", kRandomMaskValue});
    }
  }
  const int layers = Uniform(rng, 1, options.max_bidirectional_layers);
  const bool heads = options.allow_heads && Coin(rng, 0.4);
  for (int l = 0; l < layers; ++l) {
    const bool last = l + 1 == layers;
    BidirectionalSpec bidi;
    bidi.name = "bidirectional_" + std::to_string(l);
    bidi.layer = RandomRnn(rng, width, !last || Coin(rng));
    bidi.layer.go_backwards = Coin(rng, 0.15);
    static const char* kMerge[] = {"concat", "sum", "mul", "ave", "none"};
    const int merges = last && !heads ? 5 : 4;
    bidi.merge_mode = kMerge[Uniform(rng, 0, merges - 1)];
    bidi.masked_step_output =
        Coin(rng) ? MaskedStepOutput::kZeros : MaskedStepOutput::kState;
    if (Coin(rng, 0.3)) {
      RnnLayerSpec back = RandomRnn(rng, width, bidi.layer.return_sequences);
      back.go_backwards = !bidi.layer.go_backwards;
      back.return_state = bidi.layer.return_state;
      if (bidi.merge_mode != "concat" && bidi.merge_mode != "none" &&
          back.units != bidi.layer.units) {
        back.units = bidi.layer.units;
        const bool reset_after =
            back.cell == CellType::kGru && *back.reset_after;
        back.weights = RandomRnnWeights(rng, back.cell, back.units, width,
                                        *back.use_bias, reset_after);
      }
      bidi.backward_layer = back;
    } else {
      const RnnLayerSpec& f = bidi.layer;
      bidi.backward_weights =
          RandomRnnWeights(rng, f.cell, f.units, width, *f.use_bias,
                           f.cell == CellType::kGru && *f.reset_after);
    }
    const int fu = bidi.layer.units;
    const int bu = bidi.backward_layer ? bidi.backward_layer->units : fu;
    width =
        bidi.merge_mode == "concat" || bidi.merge_mode == "none" ? fu + bu : fu;
    spec.layers.push_back(bidi);
  }
  if (heads) {
    static const char* kHeads[] = {"linear", "softmax", "sigmoid", "relu",
                                   "tanh"};
    DenseSpec dense;
    dense.units = Uniform(rng, 1, 6);
    dense.activation = kHeads[Uniform(rng, 0, 4)];
    dense.kernel = RandomWeights(rng, {width, dense.units});
    dense.bias = RandomWeights(rng, {dense.units});
    spec.layers.push_back(dense);
  }
  return spec;
}

namespace {

std::optional<bool> MaybeFlag(std::mt19937& rng) {
  if (Coin(rng, 0.3)) return std::nullopt;
  return Coin(rng, 0.7);
}

// A random layer that keeps the width and the time axis (or a Dense that
// changes the width), on `width` values per row; updates `width`.
LayerSpec RandomRowLayer(std::mt19937& rng, int& width) {
  static const char* kActivations[] = {"relu", "tanh",    "softmax", "gelu",
                                       "elu",  "sigmoid", "swish"};
  switch (Uniform(rng, 0, 3)) {
    case 0: {
      DenseSpec dense;
      dense.name = "dense";
      dense.units = Uniform(rng, 1, 8);
      dense.activation = kActivations[Uniform(rng, 0, 6)];
      dense.kernel = RandomWeights(rng, {width, dense.units});
      dense.bias = RandomWeights(rng, {dense.units});
      width = dense.units;
      return dense;
    }
    case 1:
      return ActivationSpec{"activation", kActivations[Uniform(rng, 0, 6)]};
    case 2: {
      BatchNormalizationSpec bn;
      bn.name = "batch_normalization";
      if (Coin(rng)) bn.epsilon = Coin(rng) ? 1e-3f : 1e-5f;
      bn.center = MaybeFlag(rng);
      bn.scale = MaybeFlag(rng);
      if (bn.scale.value_or(true)) {
        bn.gamma = Tensor{{width}, RandomValues(rng, width, 2.0f)};
      }
      if (bn.center.value_or(true)) bn.beta = RandomWeights(rng, {width});
      bn.moving_mean = Tensor{{width}, RandomValues(rng, width, 0.5f)};
      bn.moving_variance = Tensor{{width}, RandomValues(rng, width, 1.0f)};
      for (float& v : bn.moving_variance.values) v = std::abs(v) + 0.05f;
      return bn;
    }
    default: {
      LayerNormalizationSpec ln;
      ln.name = "layer_normalization";
      ln.center = MaybeFlag(rng);
      ln.scale = MaybeFlag(rng);
      if (ln.scale.value_or(true)) {
        ln.gamma = Tensor{{width}, RandomValues(rng, width, 2.0f)};
      }
      if (ln.center.value_or(true)) ln.beta = RandomWeights(rng, {width});
      return ln;
    }
  }
}

void AddRowLayers(std::mt19937& rng, int max, int& width, ModelSpec& spec) {
  for (int n = Uniform(rng, 0, max); n > 0; --n) {
    spec.layers.push_back(RandomRowLayer(rng, width));
  }
}

}  // namespace

ModelSpec RandomChainModelSpec(std::mt19937& rng) {
  ModelSpec spec;
  spec.name = "random_chain";
  int width;
  if (Coin(rng, 0.3)) {
    EmbeddingSpec e{"embedding", Uniform(rng, 2, 12), Uniform(rng, 1, 8)};
    e.embeddings = Tensor{{e.input_dim, e.output_dim},
                          RandomValues(rng, e.input_dim * e.output_dim)};
    e.mask_zero = Coin(rng, 0.6);
    width = e.output_dim;
    spec.layers.push_back(e);
  } else {
    spec.input_dim = Uniform(rng, 1, 8);
    width = spec.input_dim;
    if (Coin(rng, 0.5)) {
      spec.layers.push_back(MaskingSpec{"masking", kRandomMaskValue});
    }
  }
  if (Coin(rng, 0.2)) AddRowLayers(rng, 1, width, spec);
  const int layers = Uniform(rng, 1, 2);
  bool sequences = true;
  for (int l = 0; l < layers; ++l) {
    const bool last = l + 1 == layers;
    BidirectionalSpec bidi;
    bidi.name = "bidirectional_" + std::to_string(l);
    bidi.layer = RandomRnn(rng, width, !last || Coin(rng, 0.8));
    static const char* kMerge[] = {"concat", "sum", "mul", "ave"};
    bidi.merge_mode = kMerge[Uniform(rng, 0, 3)];
    bidi.masked_step_output =
        Coin(rng, 0.8) ? MaskedStepOutput::kZeros : MaskedStepOutput::kState;
    const RnnLayerSpec& f = bidi.layer;
    bidi.backward_weights =
        RandomRnnWeights(rng, f.cell, f.units, width, *f.use_bias,
                         f.cell == CellType::kGru && *f.reset_after);
    width = bidi.merge_mode == "concat" ? 2 * f.units : f.units;
    sequences = f.return_sequences;
    spec.layers.push_back(bidi);
    if (!last) AddRowLayers(rng, 2, width, spec);
  }
  AddRowLayers(rng, 2, width, spec);
  if (sequences && Coin(rng, 0.6)) {
    spec.layers.push_back(GlobalPoolingSpec{
        "pooling", Coin(rng) ? PoolingType::kMax : PoolingType::kAverage});
    AddRowLayers(rng, 2, width, spec);
  }
  return spec;
}

}  // namespace biserve::testing
