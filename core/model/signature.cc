#include "core/model/signature.h"

#include <set>
#include <string>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/model.h"

namespace biserve {
namespace {

// "signature input 'h0' (INITIAL_H)", how every message names a tensor.
std::string Label(const SignatureTensor& tensor, bool is_input) {
  return absl::StrCat("signature ", is_input ? "input" : "output", " '",
                      tensor.name, "' (", SignatureRoleName(tensor.role), ")");
}

absl::Status Invalid(const SignatureTensor& tensor, bool is_input,
                     absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(Label(tensor, is_input), ": ", what));
}

// The datatypes a tensor of `role` may declare in `model`.
std::vector<std::string> AllowedDatatypes(SignatureRole role,
                                          const Model& model) {
  const bool integer =
      role == SignatureRole::kLengths ||
      (role == SignatureRole::kInput && model.takes_token_ids());
  if (integer) return {"INT64", "INT32"};
  return {"FP32"};
}

absl::Status CheckDatatype(const SignatureTensor& tensor, bool is_input,
                           const Model& model) {
  const std::vector<std::string> allowed = AllowedDatatypes(tensor.role, model);
  for (const std::string& type : allowed) {
    if (tensor.datatype == type) return absl::OkStatus();
  }
  std::string why;
  if (tensor.role == SignatureRole::kInput) {
    why = model.takes_token_ids() ? " (token ids of an Embedding model)"
                                  : " (float features)";
  }
  return Invalid(
      tensor, is_input,
      absl::StrCat("datatype must be ", absl::StrJoin(allowed, " or "), why,
                   "; was '", tensor.datatype, "'"));
}

std::vector<const BidirectionalLayer*> Bidirectionals(const Model& model) {
  std::vector<const BidirectionalLayer*> layers;
  for (const StackLayer& layer : model.layers()) {
    if (const auto* b = std::get_if<BidirectionalLayer>(&layer)) {
      layers.push_back(b);
    }
  }
  return layers;
}

// `layers` as the state tensors of `role` need them: both directions of
// each with `units` units, and LSTM cells for a c state.
absl::Status CheckStateLayers(
    const SignatureTensor& tensor, bool is_input,
    const std::vector<const BidirectionalLayer*>& layers) {
  const bool c = tensor.role == SignatureRole::kInitialC ||
                 tensor.role == SignatureRole::kFinalC;
  const int units = layers.front()->forward.units;
  for (const BidirectionalLayer* layer : layers) {
    for (const RnnDirection* d : {&layer->forward, &layer->backward}) {
      if (d->units != units) {
        return Invalid(
            tensor, is_input,
            absl::StrCat(
                "the tensor is [", is_input ? 2 : 2 * layers.size(),
                ", B, units], so ",
                is_input ? "the first Bidirectional layer's"
                         : "every Bidirectional layer's",
                " directions need the same units; layer '", layer->name,
                "' has forward ", layer->forward.units, " and backward ",
                layer->backward.units,
                layer == layers.front()
                    ? ""
                    : absl::StrCat(", the first layer forward ", units)));
      }
      if (c && d->cell != CellType::kLstm) {
        return Invalid(
            tensor, is_input,
            absl::StrCat("c states are LSTM's; layer '", layer->name,
                         "' has a ", CellTypeName(d->cell), " direction"));
      }
    }
  }
  return absl::OkStatus();
}

// The rules of `tensor`'s role against the model (datatype, layers, time
// axis), for a tensor on the right side.
absl::Status CheckAgainstModel(const SignatureTensor& tensor, bool is_input,
                               const Model& model) {
  if (absl::Status s = CheckDatatype(tensor, is_input, model); !s.ok()) {
    return s;
  }
  const std::vector<const BidirectionalLayer*> layers = Bidirectionals(model);
  switch (tensor.role) {
    case SignatureRole::kInitialH:
    case SignatureRole::kInitialC:
      return CheckStateLayers(tensor, is_input, {layers.front()});
    case SignatureRole::kFinalH:
    case SignatureRole::kFinalC:
      return CheckStateLayers(tensor, is_input, layers);
    case SignatureRole::kOutput:
      if (model.output_size() == 0) {
        return Invalid(tensor, is_input,
                       "the model has no single output: its last layer is a "
                       "Bidirectional with merge mode none and no layer "
                       "after it");
      }
      if (tensor.time_major && !model.returns_sequences()) {
        return Invalid(tensor, is_input,
                       "time_major is set, but the model's output has no "
                       "time axis (its last recurrent layer has "
                       "return_sequences = false)");
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// One tensor on its side of the signature: a role that belongs there, a
// name, time_major only where there is a time axis to put first.
absl::Status CheckTensor(const SignatureTensor& tensor, bool is_input,
                         const Model& model) {
  if (tensor.role == SignatureRole::kUnspecified) {
    return Invalid(tensor, is_input,
                   is_input ? "role is not set; expected INPUT, LENGTHS, "
                              "INITIAL_H or INITIAL_C"
                            : "role is not set; expected OUTPUT, FINAL_H or "
                              "FINAL_C");
  }
  if (IsInputRole(tensor.role) != is_input) {
    return Invalid(tensor, is_input,
                   absl::StrCat("is ", is_input ? "an output" : "an input",
                                " role; move it to signature.",
                                is_input ? "outputs" : "inputs"));
  }
  if (tensor.name.empty()) {
    return Invalid(tensor, is_input, "name is empty");
  }
  if (tensor.time_major && tensor.role != SignatureRole::kInput &&
      tensor.role != SignatureRole::kOutput) {
    return Invalid(tensor, is_input,
                   "time_major is only for INPUT and a sequence OUTPUT");
  }
  return CheckAgainstModel(tensor, is_input, model);
}

// Names unique across inputs and outputs, one tensor per role, one INPUT.
absl::Status CheckUnique(const Signature& signature) {
  std::set<std::string> names;
  std::set<SignatureRole> roles;
  for (const bool is_input : {true, false}) {
    for (const SignatureTensor& t :
         is_input ? signature.inputs : signature.outputs) {
      if (!names.insert(t.name).second) {
        return Invalid(t, is_input,
                       "the name is used twice; signature tensors need "
                       "distinct names");
      }
      if (!roles.insert(t.role).second) {
        return Invalid(t, is_input,
                       absl::StrCat("a second ", SignatureRoleName(t.role),
                                    "; a signature has at most one tensor "
                                    "per role"));
      }
    }
  }
  if (!roles.contains(SignatureRole::kInput)) {
    return absl::InvalidArgumentError(
        "signature: no INPUT; a signature needs exactly one input of role "
        "INPUT (the features or token ids)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view SignatureRoleName(SignatureRole role) {
  switch (role) {
    case SignatureRole::kInput:
      return "INPUT";
    case SignatureRole::kLengths:
      return "LENGTHS";
    case SignatureRole::kInitialH:
      return "INITIAL_H";
    case SignatureRole::kInitialC:
      return "INITIAL_C";
    case SignatureRole::kOutput:
      return "OUTPUT";
    case SignatureRole::kFinalH:
      return "FINAL_H";
    case SignatureRole::kFinalC:
      return "FINAL_C";
    case SignatureRole::kUnspecified:
      break;
  }
  return "ROLE_UNSPECIFIED";
}

bool IsInputRole(SignatureRole role) {
  return role == SignatureRole::kInput || role == SignatureRole::kLengths ||
         role == SignatureRole::kInitialH || role == SignatureRole::kInitialC;
}

const SignatureTensor* Signature::Find(SignatureRole role) const {
  for (const SignatureTensor& t : IsInputRole(role) ? inputs : outputs) {
    if (t.role == role) return &t;
  }
  return nullptr;
}

absl::Status CheckSignature(const Signature& signature, const Model& model) {
  for (const bool is_input : {true, false}) {
    for (const SignatureTensor& t :
         is_input ? signature.inputs : signature.outputs) {
      if (absl::Status s = CheckTensor(t, is_input, model); !s.ok()) return s;
    }
  }
  return CheckUnique(signature);
}

}  // namespace biserve
