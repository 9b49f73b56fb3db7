// Signature: how a model imported from another framework names and lays out
// its tensors on the Open Inference Protocol, so that a client written for
// that framework's server (Triton with ONNX Runtime, say) works unchanged.
//
// Plain structs mirroring Signature and SignatureTensor in
// proto/biserve/v1/model.proto (the contract: roles, shapes, layouts);
// proto/model_codec.h fills them in, Model::Create checks them against the
// model (CheckSignature) and keeps them, and proto/open_inference_codec.h
// answers ModelMetadata and ModelInfer with them. biserve's own tensor names
// keep working beside a signature's.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace biserve {

class Model;

// What a tensor of the signature carries. B is the batch, T time.
enum class SignatureRole {
  kUnspecified,
  // Inputs.
  kInput,     // FP32 [B, T, input_dim], or token ids [B, T]
  kLengths,   // [B]: steps per sequence; the rest is padding
  kInitialH,  // [2, B, units]: first Bidirectional layer, forward, backward
  kInitialC,  // the same for LSTM's c
  // Outputs.
  kOutput,  // [B, T, D] or [B, D]: the model's output
  kFinalH,  // [2 * layers, B, units]: layer 0 forward, layer 0 backward, ...
  kFinalC,  // the same for LSTM's c
};

// The proto's name of `role`: "INPUT", "LENGTHS", ...
absl::string_view SignatureRoleName(SignatureRole role);

// Whether `role` names an input (INPUT, LENGTHS, INITIAL_H, INITIAL_C).
bool IsInputRole(SignatureRole role);

struct SignatureTensor {
  std::string name;  // the source graph's tensor name
  SignatureRole role = SignatureRole::kUnspecified;
  // The Open Inference datatype the source declares: "FP32", "INT64" or
  // "INT32". Requests may send INT32 or INT64 for either integer type.
  std::string datatype;
  // INPUT and a sequence OUTPUT only: time axis first, [T, B, ...].
  bool time_major = false;
};

struct Signature {
  std::string source;  // where the names come from, e.g. "onnx"
  std::vector<SignatureTensor> inputs;
  std::vector<SignatureTensor> outputs;

  // The tensor of `role` (among inputs or outputs, as the role is), or
  // nullptr. A checked signature has at most one per role.
  const SignatureTensor* Find(SignatureRole role) const;
};

// OK if `signature` fits `model`, else INVALID_ARGUMENT naming the tensor
// ("signature input 'h0' (INITIAL_H): ..."): exactly one INPUT, of FP32 for
// a feature model or INT64/INT32 for an Embedding model; at most one tensor
// per role, each role on its side (inputs, outputs); LENGTHS INT64 or INT32,
// states and OUTPUT FP32; names non-empty and unique across inputs and
// outputs; INITIAL_H only when the first Bidirectional layer's directions
// have equal units (INITIAL_C: and are both LSTM); FINAL_H only when every
// direction of every Bidirectional layer has the same units (FINAL_C: and
// is LSTM); OUTPUT only when the model has one merged output; time_major
// only on INPUT and on an OUTPUT with a time axis.
// REQUIRES: `model` is fully built (Model::Create calls this last).
absl::Status CheckSignature(const Signature& signature, const Model& model);

}  // namespace biserve
