// FunctionalChain: a Keras functional model's layer graph as the chain of
// layers biserve serves. biserve imports a chain (each layer fed by the one
// before), whose first Bidirectional layer may take its initial states from
// extra model inputs, and whose last Bidirectional layer's states may be
// extra model outputs. Keras 2, Keras 3 and TF.js write the graph
// (inbound_nodes, input_layers, output_layers) in two ways; both read here.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"
#include "importers/keras_layer.h"

namespace biserve::importers {

// A reference to a layer's output tensor in a functional model.
struct TensorRef {
  std::string layer;
  int tensor_index = 0;
};

// The tensors `layer` is called on, its data input first, then any initial
// states: Keras 2 and TF.js write [[["name", node, tensor, {kwargs}], ...]]
// (initial states maybe in kwargs); Keras 3 writes
// [{"args": [keras tensors], "kwargs": {"initial_state": [...]}}]. Empty
// for a layer called on nothing (an InputLayer). INVALID_ARGUMENT for a
// layer called more than once (shared) or an entry not understood.
absl::StatusOr<std::vector<TensorRef>> InboundTensors(const KerasLayer& layer);

// A model's layers in the order to compute them.
struct KerasChain {
  // The data input's InputLayer first, then the computing layers; without
  // the InputLayers of initial states (the request carries those).
  std::vector<KerasLayer> layers;
  int initial_state_inputs = 0;  // inputs feeding initial states
};

// Orders the functional model `config` ({"layers", "input_layers",
// "output_layers"}) as a chain, and checks that its extra inputs are initial
// states of the first Bidirectional layer and its extra outputs the last
// Bidirectional layer's states. INVALID_ARGUMENT, naming the layer or
// tensor, for any other graph.
absl::StatusOr<KerasChain> FunctionalChain(
    const google::protobuf::Struct& config);

}  // namespace biserve::importers
