// UpgradeKerasModelConfig: a model config from an older Keras writer
// brought to the spelling the layer converters read (Keras 2.2 and later),
// as Keras' own loaders do when they read an old file: Keras 1's
// output_dim and inner_activation become units and recurrent_activation,
// CuDNNLSTM and CuDNNGRU become the LSTM and GRU that load their weights
// (keras_weight_names.h converts the weights), and a GRU saved before
// reset_after existed gets reset_after = false, the only GRU it knew.
// A Sequential built without an input shape (by fit or build) gets the
// input shape it recorded (build_config) on its first layer.
#pragma once

#include "google/protobuf/struct.pb.h"

namespace biserve::importers {

// Rewrites `model_config` ({"class_name", "config"}) in place; layers it
// does not know are left as they are, for the converters to judge.
void UpgradeKerasModelConfig(google::protobuf::Struct& model_config);

}  // namespace biserve::importers
