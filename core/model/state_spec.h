// StateSpec: one state tensor of a Bidirectional layer, as Keras names and
// orders them.
//
// A Bidirectional layer's states are, in Keras' order: forward h, forward c
// (LSTM only), backward h, backward c (LSTM only). The Model builds that list
// once per layer (BidirectionalLayer::states); every place that reads, writes
// or names states (initial states, final states, metadata, the codecs) walks
// it rather than writing the order out again.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace biserve {

enum class Direction { kForward, kBackward };

// The hidden state h (every cell), or LSTM's cell state c.
enum class StateKind { kH, kC };

// "forward" or "backward".
absl::string_view DirectionName(Direction direction);
// "h" or "c".
absl::string_view StateKindName(StateKind kind);

struct StateSpec {
  // Keras' name: "forward_h", "forward_c", "backward_h" or "backward_c".
  std::string name;
  Direction direction = Direction::kForward;
  StateKind kind = StateKind::kH;
  int units = 0;  // the state is [units] per sequence
};

}  // namespace biserve
