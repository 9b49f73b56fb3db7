// Random models and ragged batches for property tests, from a seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/model/model_spec.h"

namespace biserve::testing {

// The mask_value of random models' Masking layers; RandomValues never
// produces it, so only steps set to it on purpose are masked.
inline constexpr float kRandomMaskValue = 7.0f;

struct RandomModelOptions {
  int max_input_dim = 12;
  int max_units = 10;
  int max_bidirectional_layers = 2;
  bool allow_embedding = true;
  bool allow_heads = true;
};

// A valid ModelSpec with random cells, units, activations, merge modes,
// go_backwards, explicit backward layers, biases and heads.
ModelSpec RandomModelSpec(std::mt19937& rng,
                          const RandomModelOptions& options = {});

// A valid ModelSpec over the whole layer chain: an optional Masking or
// Embedding (mask_zero), one or two Bidirectional layers (never merge mode
// none) with random Dense, Activation, BatchNormalization and
// LayerNormalization layers before, between and after them, and often a
// GlobalPooling (max or average) followed by more of those on the vector.
ModelSpec RandomChainModelSpec(std::mt19937& rng);

// Uniform values in [-scale, scale].
std::vector<float> RandomValues(std::mt19937& rng, int64_t count,
                                float scale = 1.0f);

// A weight tensor of `shape` with values in +-0.5 / sqrt(shape[0]) * 2.
Tensor RandomWeights(std::mt19937& rng, std::vector<int64_t> shape);

}  // namespace biserve::testing
