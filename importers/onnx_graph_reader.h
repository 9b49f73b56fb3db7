// ReadOnnxNetwork: finds the biserve model in an ONNX graph written by
// torch.onnx.export, by abstract interpretation.
//
// Every value the graph's outputs depend on is given a meaning: a constant
// (weights, folded shape arithmetic), a shape built from the batch and time
// sizes (B, T: symbols, since the served batch is any size), zeros of such a
// shape, or a view of the request's data: a graph input, a recurrent node's
// output or final states, a layer's sequence, a dense head's output, the
// batch sorted by length (pack_padded_sequence) or back. A graph input's
// axes start as unknowns that are bound as the graph uses them (a recurrent
// node's input is [T, B, features]), so the layout (batch_first or not) and
// each input's role follow from the graph itself, never from names. A node
// whose op, attributes or inputs fit none of these meanings is refused,
// named. docs/onnx.md lists what is read.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "importers/onnx_network.h"
#include "onnx/onnx_pb.h"

namespace biserve::onnx_import {

// `graph` must outlive the result (it points at the recurrent nodes);
// `opset` is the model's default-domain opset (Softmax's default axis
// changed at 13).
absl::StatusOr<OnnxNetwork> ReadOnnxNetwork(const onnx::GraphProto& graph,
                                            int64_t opset);

}  // namespace biserve::onnx_import
