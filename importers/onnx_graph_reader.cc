#include "importers/onnx_graph_reader.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "importers/onnx_constant_folding.h"
#include "importers/onnx_tensor.h"

namespace biserve::onnx_import {
namespace {

using Role = v1::SignatureTensor::Role;

// A dimension: a fixed size, or a symbol. Symbols 0 and 1 are the batch and
// time sizes; others are a graph input's axes not yet known, bound (to B,
// T or a size) by Unifier as the graph uses them.
struct Dim {
  int64_t size = 0;
  int symbol = -1;  // < 0: fixed `size`
  bool fixed() const { return symbol < 0; }
};
constexpr int kBatch = 0;
constexpr int kTime = 1;
Dim Fixed(int64_t size) { return Dim{size, -1}; }
Dim Symbol(int symbol) { return Dim{0, symbol}; }

// Union-find over symbols, where a class may also be bound to a size. The
// batch and time symbols are never bound to a size nor to each other.
class Unifier {
 public:
  Unifier() : parent_{kBatch, kTime}, size_(2) {}

  int NewSymbol() {
    parent_.push_back(static_cast<int>(parent_.size()));
    size_.emplace_back();
    return parent_.back();
  }

  Dim Resolve(Dim dim) {
    if (dim.fixed()) return dim;
    const int root = Root(dim.symbol);
    if (size_[root].has_value()) return Fixed(*size_[root]);
    return Symbol(root);
  }

  // Makes a and b the same dimension; false when they cannot be.
  bool Unify(Dim a, Dim b) {
    a = Resolve(a);
    b = Resolve(b);
    if (a.fixed() && b.fixed()) return a.size == b.size;
    if (a.fixed()) std::swap(a, b);
    if (b.fixed()) {
      if (a.symbol <= kTime) return false;
      size_[a.symbol] = b.size;
      return true;
    }
    if (a.symbol == b.symbol) return true;
    if (a.symbol <= kTime && b.symbol <= kTime) return false;
    const int low = std::min(a.symbol, b.symbol);
    const int high = std::max(a.symbol, b.symbol);
    parent_[high] = low;
    return true;
  }

 private:
  int Root(int symbol) {
    while (parent_[symbol] != symbol) symbol = parent_[symbol];
    return symbol;
  }

  std::vector<int> parent_;
  std::vector<std::optional<int64_t>> size_;
};

enum class Kind {
  kConstant,       // known at import: weights, shapes folded
  kShape,          // a 0-D or 1-D int64 tensor whose elements are Dims
  kZeros,          // zeros of a (symbolic) shape
  kGraphInput,     // a graph input, or a view of it (transposed, sorted)
  kSortedLengths,  // TopK's values over the lengths
  kSortIndices,    // TopK's indices: the batch sorted by length
  kUnsortIndices,  // their inverse permutation (ScatterElements)
  kRange,          // Range(0, B, 1)
  kSequence,       // a [.., B, .., T, .., F] sequence after some layers
  kRnnOutput,      // a recurrent node's Y, axes as `axes` says
  kStates,         // final states of consecutive layers, [2 * n, B, H]
  kState,          // one layer's one direction's final state, [B, H]
  kFinal,          // cat(h_n[-2], h_n[-1]) (then heads): [B, D]
};

// What each axis of a kRnnOutput holds.
enum class RnnAxis { kTime, kDirection, kBatch, kHidden };

struct Value {
  Kind kind = Kind::kConstant;
  ConstTensor constant;   // kConstant
  std::vector<Dim> dims;  // kShape: its elements; others: the tensor's dims
  bool scalar = false;    // kShape: 0-D
  bool sorted = false;    // the batch axis is in length-sorted order
  std::string input;      // kGraphInput: which one
  bool sliced = false;    // kGraphInput: a part of it (h0 of several layers)
  int layer = 0;  // kSequence: recurrent layers applied; kRnnOutput, kState:
                  // the layer; kStates: the first layer
  int last_layer = 0;  // kStates
  // kStates: [2 * n, B, H] as the nodes give them; [n, 2, B, H] after
  // h_n.view(layers, 2, B, H); [B, 2, H] after h_n[-2:].transpose(0, 1).
  enum class StatesForm { kStacked, kSplit, kBatchMajor };
  StatesForm form = StatesForm::kStacked;
  bool is_c = false;          // kStates, kState: LSTM's c rather than h
  int direction = 0;          // kState: 0 forward, 1 backward
  int heads = 0;              // kSequence, kFinal: dense layers applied
  bool head_open = false;     // the last dense may still take a bias or an
                              // activation
  std::vector<RnnAxis> axes;  // kRnnOutput
};

absl::Status Refuse(const onnx::NodeProto& node, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(NodeName(node), ": ", why));
}

std::string DimsText(const std::vector<Dim>& dims) {
  std::vector<std::string> parts;
  for (const Dim& dim : dims) {
    if (dim.fixed()) {
      parts.push_back(absl::StrCat(dim.size));
    } else {
      parts.push_back(dim.symbol == kBatch  ? "batch"
                      : dim.symbol == kTime ? "time"
                                            : "?");
    }
  }
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

// Normalizes a possibly negative axis; -1 when out of range.
int NormalizeAxis(int64_t axis, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) return -1;
  return static_cast<int>(axis < 0 ? axis + r : axis);
}

class GraphReader {
 public:
  explicit GraphReader(const onnx::GraphProto& graph) : graph_(graph) {}

  absl::StatusOr<OnnxNetwork> Read() {
    if (absl::Status s = ReadInitializers(); !s.ok()) return s;
    if (absl::Status s = ReadInputs(); !s.ok()) return s;
    absl::StatusOr<std::vector<int>> needed = NeededNodes();
    if (!needed.ok()) return needed.status();
    for (int index : *needed) {
      if (absl::Status s = Interpret(graph_.node(index)); !s.ok()) return s;
    }
    if (absl::Status s = ReadOutputs(); !s.ok()) return s;
    if (absl::Status s = CheckInputs(); !s.ok()) return s;
    return std::move(network_);
  }

 private:
  // ---- Set-up -------------------------------------------------------------

  absl::Status ReadInitializers() {
    for (const onnx::TensorProto& tensor : graph_.initializer()) {
      absl::StatusOr<ConstTensor> constant = ReadTensor(tensor);
      if (!constant.ok()) return constant.status();
      fold_budget_ += 4 * constant->size();
      Value value;
      value.constant = *std::move(constant);
      values_[tensor.name()] = std::move(value);
    }
    return absl::OkStatus();
  }

  // Graph inputs that are not initializers (old exporters list those too)
  // are the request's tensors; their axes start unknown.
  absl::Status ReadInputs() {
    for (const onnx::ValueInfoProto& input : graph_.input()) {
      if (values_.contains(input.name())) continue;
      const onnx::TypeProto& type = input.type();
      if (!type.has_tensor_type()) {
        return absl::InvalidArgumentError(
            absl::StrCat("graph input '", input.name(), "' is not a tensor"));
      }
      const int elem = type.tensor_type().elem_type();
      std::string datatype;
      if (elem == onnx::TensorProto::FLOAT) datatype = "FP32";
      if (elem == onnx::TensorProto::INT64) datatype = "INT64";
      if (elem == onnx::TensorProto::INT32) datatype = "INT32";
      if (datatype.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "graph input '", input.name(), "' has element type ",
            onnx::TensorProto::DataType_Name(
                static_cast<onnx::TensorProto::DataType>(elem)),
            "; biserve takes float32 features and int32 or int64 token ids "
            "and lengths"));
      }
      const int rank = type.tensor_type().shape().dim_size();
      if (rank < 1 || rank > 3) {
        return absl::InvalidArgumentError(
            absl::StrCat("graph input '", input.name(), "' has rank ", rank,
                         "; expected 1 (lengths), 2 (token ids) or 3 "
                         "(features, initial states)"));
      }
      Value value;
      value.kind = Kind::kGraphInput;
      value.input = input.name();
      for (int i = 0; i < rank; ++i) {
        value.dims.push_back(Symbol(unifier_.NewSymbol()));
      }
      input_dims_[input.name()] = value.dims;
      input_types_[input.name()] = datatype;
      input_order_.push_back(input.name());
      values_[input.name()] = std::move(value);
    }
    return absl::OkStatus();
  }

  // The nodes the graph's outputs depend on, in graph (topological) order:
  // dead code may hold ops biserve does not read, and need not.
  absl::StatusOr<std::vector<int>> NeededNodes() {
    std::map<std::string, int> producer;
    for (int i = 0; i < graph_.node_size(); ++i) {
      for (const std::string& output : graph_.node(i).output()) {
        if (!output.empty()) producer[output] = i;
      }
    }
    std::set<int> needed;
    std::vector<std::string> pending;
    for (const onnx::ValueInfoProto& output : graph_.output()) {
      pending.push_back(output.name());
    }
    while (!pending.empty()) {
      const std::string name = pending.back();
      pending.pop_back();
      auto it = producer.find(name);
      if (it == producer.end()) continue;
      if (!needed.insert(it->second).second) continue;
      const onnx::NodeProto& node = graph_.node(it->second);
      for (const std::string& input : node.input()) {
        if (!input.empty()) pending.push_back(input);
      }
    }
    return std::vector<int>(needed.begin(), needed.end());
  }

  // ---- Values ---------------------------------------------------------------

  // The node's input `i`, or null when absent or empty (an omitted optional
  // input).
  const Value* Input(const onnx::NodeProto& node, int i) {
    if (i >= node.input_size() || node.input(i).empty()) return nullptr;
    auto it = values_.find(node.input(i));
    return it == values_.end() ? nullptr : &it->second;
  }

  absl::StatusOr<const Value*> Required(const onnx::NodeProto& node, int i) {
    const Value* value = Input(node, i);
    if (value == nullptr) {
      if (i < node.input_size() && !node.input(i).empty()) {
        return Refuse(node, absl::StrCat("input '", node.input(i),
                                         "' is defined by no earlier node "
                                         "(the graph is not sorted)"));
      }
      return Refuse(node, absl::StrCat("input ", i, " is missing"));
    }
    return value;
  }

  void SetOutput(const onnx::NodeProto& node, int i, Value value) {
    if (i < node.output_size() && !node.output(i).empty()) {
      values_[node.output(i)] = std::move(value);
    }
  }

  std::vector<Dim> Resolved(const std::vector<Dim>& dims) {
    std::vector<Dim> out;
    for (const Dim& dim : dims) out.push_back(unifier_.Resolve(dim));
    return out;
  }

  // A kConstant int vector (or scalar) or kShape, as dims.
  std::optional<std::vector<Dim>> AsDims(const Value& value) {
    if (value.kind == Kind::kShape) return value.dims;
    if (value.kind == Kind::kConstant && !value.constant.is_float &&
        value.constant.shape.size() <= 1) {
      std::vector<Dim> dims;
      for (int64_t v : value.constant.ints) dims.push_back(Fixed(v));
      return dims;
    }
    return std::nullopt;
  }

  // A constant list of ints (an attribute turned input in newer opsets).
  std::optional<std::vector<int64_t>> ConstInts(const Value* value) {
    if (value == nullptr || value->kind != Kind::kConstant ||
        value->constant.is_float) {
      return std::nullopt;
    }
    return value->constant.ints;
  }

  // Axes given as an attribute (older opsets) or as input `i` (newer).
  std::optional<std::vector<int64_t>> AxesOf(const onnx::NodeProto& node,
                                             int i) {
    if (auto axes = IntsAttribute(node, "axes")) return axes;
    return ConstInts(Input(node, i));
  }

  absl::Status AssignRole(const onnx::NodeProto& node, const std::string& input,
                          Role role) {
    auto [it, inserted] = roles_.emplace(input, role);
    if (!inserted && it->second != role) {
      return Refuse(node, absl::StrCat("graph input '", input,
                                       "' is used in two different roles"));
    }
    if (inserted) {
      for (const auto& [other, other_role] : roles_) {
        if (other != input && other_role == role) {
          return Refuse(node, absl::StrCat("graph inputs '", other, "' and '",
                                           input, "' play the same role"));
        }
      }
    }
    return absl::OkStatus();
  }

  // ---- Interpretation -------------------------------------------------------

  absl::Status Interpret(const onnx::NodeProto& node) {
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      return Refuse(node, absl::StrCat("op domain '", node.domain(),
                                       "' is not the standard ONNX domain"));
    }
    const std::string& op = node.op_type();
    if (op == "Constant") return OpConstant(node);
    // Shape ops on constants only are folded here, so the handlers below
    // see them only with a shape or data input.
    if (AllConstant(node)) {
      absl::StatusOr<std::optional<ConstTensor>> folded = Fold(node);
      if (!folded.ok()) return Refuse(node, folded.status().message());
      if (folded->has_value()) {
        fold_budget_ -= (*folded)->size();
        if (fold_budget_ < 0) {
          return Refuse(node,
                        "folds constants larger than the model's "
                        "weights several times over");
        }
        Value value;
        value.constant = **std::move(folded);
        SetOutput(node, 0, std::move(value));
        return absl::OkStatus();
      }
    }
    if (op == "Identity" || op == "Dropout") return OpIdentity(node);
    if (op == "Cast") return OpCast(node);
    if (op == "Shape") return OpShape(node);
    if (op == "Gather") return OpGather(node);
    if (op == "Unsqueeze") return OpUnsqueeze(node);
    if (op == "Squeeze") return OpSqueeze(node);
    if (op == "Concat") return OpConcat(node);
    if (op == "Slice") return OpSlice(node);
    if (op == "ReduceProd") return OpReduceProd(node);
    if (op == "Range") return OpRange(node);
    if (op == "ConstantOfShape") return OpConstantOfShape(node);
    if (op == "Expand") return OpExpand(node);
    if (op == "TopK") return OpTopK(node);
    if (op == "ScatterElements") return OpScatterElements(node);
    if (op == "Transpose") return OpTranspose(node);
    if (op == "Reshape") return OpReshape(node);
    if (op == "LSTM" || op == "GRU" || op == "RNN") return OpRecurrent(node);
    if (op == "MatMul") return OpMatMul(node);
    if (op == "Add") return OpAdd(node);
    if (op == "Gemm") return OpGemm(node);
    if (op == "Softmax" || op == "LogSoftmax" || op == "Sigmoid" ||
        op == "Tanh" || op == "Relu") {
      return OpActivation(node);
    }
    return Refuse(node,
                  "this op is not part of the PyTorch bidirectional RNN "
                  "patterns biserve reads (see docs/onnx.md)");
  }

  // ---- Constant folding -----------------------------------------------------

  bool AllConstant(const onnx::NodeProto& node) {
    bool any = false;
    for (int i = 0; i < node.input_size(); ++i) {
      if (node.input(i).empty()) continue;
      const Value* value = Input(node, i);
      if (value == nullptr || value->kind != Kind::kConstant) return false;
      any = true;
    }
    return any;
  }

  // The shape ops on constants (an export without constant folding
  // rearranges the weights at run time); nullopt for other ops.
  absl::StatusOr<std::optional<ConstTensor>> Fold(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    const ConstTensor& x = Input(node, 0)->constant;
    const auto ints = [&](int i) {
      return ConstInts(Input(node, i)).value_or(std::vector<int64_t>());
    };
    absl::StatusOr<ConstTensor> out = absl::UnimplementedError("");
    if (op == "Transpose") {
      out = FoldTranspose(
          x, IntsAttribute(node, "perm").value_or(std::vector<int64_t>()));
    } else if (op == "Slice") {
      if (auto starts = IntsAttribute(node, "starts")) {
        out = FoldSlice(
            x, *starts,
            IntsAttribute(node, "ends").value_or(std::vector<int64_t>()),
            IntsAttribute(node, "axes").value_or(std::vector<int64_t>()), {});
      } else {
        out = FoldSlice(x, ints(1), ints(2), ints(3), ints(4));
      }
    } else if (op == "Concat") {
      std::vector<const ConstTensor*> parts;
      for (int i = 0; i < node.input_size(); ++i) {
        parts.push_back(&Input(node, i)->constant);
      }
      out = FoldConcat(parts, IntAttribute(node, "axis", 0));
    } else if (op == "Gather") {
      out = FoldGather(x, Input(node, 1)->constant,
                       IntAttribute(node, "axis", 0));
    } else if (op == "Reshape") {
      out = FoldReshape(x, ints(1), IntAttribute(node, "allowzero", 0) != 0);
    } else if (op == "Squeeze") {
      out = FoldSqueeze(x, AxesOf(node, 1).value_or(std::vector<int64_t>()));
    } else if (op == "Unsqueeze") {
      out = FoldUnsqueeze(x, AxesOf(node, 1).value_or(std::vector<int64_t>()));
    } else {
      return std::optional<ConstTensor>();
    }
    if (!out.ok()) return out.status();
    return std::optional<ConstTensor>(*std::move(out));
  }

  absl::Status OpConstant(const onnx::NodeProto& node) {
    absl::StatusOr<ConstTensor> constant = ReadConstantNode(node);
    if (!constant.ok()) return Refuse(node, constant.status().message());
    Value value;
    value.constant = *std::move(constant);
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // Identity and Dropout (an identity at inference).
  absl::Status OpIdentity(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    if (node.op_type() == "Dropout") {
      const Value* training = Input(node, 2);
      if (training != nullptr && (training->kind != Kind::kConstant ||
                                  !training->constant.AllZero())) {
        return Refuse(node, "dropout in training mode");
      }
    }
    SetOutput(node, 0, **x);
    return absl::OkStatus();
  }

  absl::Status OpCast(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    Value value = **x;
    if (value.kind == Kind::kConstant) {
      const int64_t to = IntAttribute(node, "to", 0);
      ConstTensor& c = value.constant;
      if (to == onnx::TensorProto::FLOAT && !c.is_float) {
        c.floats.assign(c.ints.begin(), c.ints.end());
        c.ints.clear();
        c.is_float = true;
      } else if (to != onnx::TensorProto::FLOAT && c.is_float) {
        c.ints.assign(c.floats.begin(), c.floats.end());
        c.floats.clear();
        c.is_float = false;
      }
    }
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  absl::Status OpShape(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    Value value;
    value.kind = Kind::kShape;
    if ((*x)->kind == Kind::kConstant) {
      for (int64_t d : (*x)->constant.shape) value.dims.push_back(Fixed(d));
    } else if ((*x)->kind == Kind::kShape) {
      value.dims = {Fixed((*x)->scalar ? 0 : (*x)->dims.size())};
      if ((*x)->scalar) value.dims.clear();
    } else {
      value.dims = (*x)->dims;
    }
    // Opset 15's start and end.
    const int64_t rank = static_cast<int64_t>(value.dims.size());
    int64_t start = IntAttribute(node, "start", 0);
    int64_t end = IntAttribute(node, "end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    value.dims =
        std::vector<Dim>(value.dims.begin() + start, value.dims.begin() + end);
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // ---- Gather ---------------------------------------------------------------

  absl::Status OpGather(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> data = Required(node, 0);
    if (!data.ok()) return data.status();
    absl::StatusOr<const Value*> indices = Required(node, 1);
    if (!indices.ok()) return indices.status();
    const int64_t axis = IntAttribute(node, "axis", 0);
    const Value& d = **data;
    const Value& i = **indices;
    if (d.kind == Kind::kConstant && d.constant.is_float &&
        i.kind == Kind::kGraphInput) {
      return GatherEmbedding(node, d, i, axis);
    }
    if (i.kind == Kind::kSortIndices || i.kind == Kind::kUnsortIndices) {
      return GatherPermutation(node, d, i, axis);
    }
    if (i.kind != Kind::kConstant || i.constant.is_float) {
      return Refuse(node, "gathers with indices biserve cannot follow");
    }
    if (d.kind == Kind::kShape ||
        (d.kind == Kind::kConstant && !d.constant.is_float &&
         d.constant.shape.size() <= 1)) {
      return GatherShape(node, *AsDims(d), i);
    }
    if (d.kind == Kind::kStates && d.form == Value::StatesForm::kSplit) {
      return GatherLayer(node, d, i, axis);
    }
    if (d.kind == Kind::kStates && d.form == Value::StatesForm::kStacked) {
      return GatherState(node, d, i, axis);
    }
    if (d.kind == Kind::kSequence) return RefuseOneStep(node, d, axis);
    return Refuse(node, "gathers from a value biserve cannot follow");
  }

  absl::Status GatherEmbedding(const onnx::NodeProto& node, const Value& table,
                               const Value& ids, int64_t axis) {
    if (axis != 0 || table.constant.shape.size() != 2) {
      return Refuse(node,
                    "an embedding lookup must gather rows of a 2-D "
                    "table (nn.Embedding)");
    }
    if (network_.embedding.has_value() || ids.sorted || ids.dims.size() != 2) {
      return Refuse(node,
                    "expected one nn.Embedding over [batch, time] "
                    "token ids");
    }
    if (input_types_[ids.input] == "FP32") {
      return Refuse(node, "an embedding's indices must be integers");
    }
    if (absl::Status s =
            AssignRole(node, ids.input, v1::SignatureTensor::INPUT);
        !s.ok()) {
      return s;
    }
    network_.embedding = table.constant;
    Value value;
    value.kind = Kind::kSequence;
    value.dims = ids.dims;
    value.dims.push_back(Fixed(table.constant.shape[1]));
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // Gather along the batch axis by the length sort (pack_padded_sequence
  // with enforce_sorted=False) or by its inverse (the un-sort after
  // pad_packed_sequence). Recurrences treat each sequence on its own, so
  // biserve needs neither: it only checks that every sort is undone.
  absl::Status GatherPermutation(const onnx::NodeProto& node, const Value& d,
                                 const Value& permutation, int64_t axis) {
    const bool unsort = permutation.kind == Kind::kUnsortIndices;
    const int a = NormalizeAxis(axis, d.dims.size());
    const bool permutable = d.kind == Kind::kGraphInput ||
                            d.kind == Kind::kSequence ||
                            d.kind == Kind::kStates || d.kind == Kind::kFinal ||
                            d.kind == Kind::kState;
    if (!permutable || a < 0 || !unifier_.Unify(d.dims[a], Symbol(kBatch))) {
      return Refuse(node, absl::StrCat("reorders axis ", axis, " of a ",
                                       DimsText(Resolved(d.dims)),
                                       " value by the length sort; expected "
                                       "its batch axis"));
    }
    if (d.sorted != unsort) {
      return Refuse(node, unsort ? "un-sorts a batch that is not sorted"
                                 : "sorts a batch twice");
    }
    Value value = d;
    value.sorted = !unsort;
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  absl::Status GatherShape(const onnx::NodeProto& node,
                           const std::vector<Dim>& dims, const Value& i) {
    Value value;
    value.kind = Kind::kShape;
    value.scalar = i.constant.shape.empty();
    for (int64_t index : i.constant.ints) {
      const int a = NormalizeAxis(index, dims.size());
      if (a < 0) return Refuse(node, "index out of range");
      value.dims.push_back(dims[a]);
    }
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // h_n[k]: one layer's one direction.
  absl::Status GatherState(const onnx::NodeProto& node, const Value& d,
                           const Value& i, int64_t axis) {
    const int count = 2 * (d.last_layer - d.layer + 1);
    if (NormalizeAxis(axis, d.dims.size()) != 0 || !i.constant.shape.empty()) {
      return Refuse(node,
                    "expected h_n[k]: one entry of the stacked final "
                    "states");
    }
    int64_t k = i.constant.ints[0];
    if (k < -count || k >= count) return Refuse(node, "index out of range");
    if (k < 0) k += count;
    Value value = d;
    value.kind = Kind::kState;
    value.layer = d.layer + static_cast<int>(k / 2);
    value.direction = static_cast<int>(k % 2);
    value.dims.erase(value.dims.begin());
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // h_n.view(layers, 2, B, H)[k]: one layer's two directions.
  absl::Status GatherLayer(const onnx::NodeProto& node, const Value& d,
                           const Value& i, int64_t axis) {
    const int count = d.last_layer - d.layer + 1;
    if (NormalizeAxis(axis, d.dims.size()) != 0 || !i.constant.shape.empty()) {
      return Refuse(node, "expected one layer of h_n.view(layers, 2, B, H)");
    }
    int64_t k = i.constant.ints[0];
    if (k < -count || k >= count) return Refuse(node, "index out of range");
    if (k < 0) k += count;
    Value value = d;
    value.form = Value::StatesForm::kStacked;
    value.layer = value.last_layer = d.layer + static_cast<int>(k);
    value.dims.erase(value.dims.begin());
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  absl::Status RefuseOneStep(const onnx::NodeProto& node, const Value& d,
                             int64_t axis) {
    const int a = NormalizeAxis(axis, d.dims.size());
    if (a >= 0 && unifier_.Unify(d.dims[a], Symbol(kTime)) && d.layer > 0) {
      return Refuse(
          node,
          "reads one time step of a bidirectional output (like y[:, -1]). "
          "In a bidirectional model the last step is not the last output: "
          "its backward half has seen only that one step (a half-started "
          "backward direction). Use the final states instead, "
          "torch.cat((h_n[-2], h_n[-1]), dim=1), which biserve serves");
    }
    return Refuse(node,
                  "gathers from a sequence along an axis biserve "
                  "cannot follow");
  }

  // ---- Shape arithmetic -----------------------------------------------------

  absl::Status OpUnsqueeze(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    std::optional<std::vector<int64_t>> axes = AxesOf(node, 1);
    const Value& v = **x;
    if (axes && axes->size() == 1 && (*axes)[0] == 0 &&
        (v.kind == Kind::kShape && v.scalar)) {
      Value value = v;
      value.scalar = false;
      SetOutput(node, 0, std::move(value));
      return absl::OkStatus();
    }
    return Refuse(node, "unsqueezes a value biserve cannot follow");
  }

  absl::Status OpSqueeze(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    const Value& v = **x;
    if (v.kind == Kind::kShape && !v.scalar && v.dims.size() == 1) {
      Value value = v;
      value.scalar = true;
      SetOutput(node, 0, std::move(value));
      return absl::OkStatus();
    }
    return Refuse(node, "squeezes a value biserve cannot follow");
  }

  absl::Status OpConcat(const onnx::NodeProto& node) {
    std::vector<const Value*> parts;
    for (int i = 0; i < node.input_size(); ++i) {
      absl::StatusOr<const Value*> part = Required(node, i);
      if (!part.ok()) return part.status();
      parts.push_back(*part);
    }
    if (parts.empty()) return Refuse(node, "concatenates nothing");
    const int64_t axis = IntAttribute(node, "axis", 0);
    const Kind kind = parts[0]->kind;
    if (kind == Kind::kShape || kind == Kind::kConstant) {
      return ConcatShapes(node, parts);
    }
    if (kind == Kind::kStates &&
        parts[0]->form == Value::StatesForm::kStacked) {
      return ConcatStates(node, parts, axis);
    }
    if (kind == Kind::kState) return ConcatFinal(node, parts, axis);
    return Refuse(node, "concatenates values biserve cannot follow");
  }

  absl::Status ConcatShapes(const onnx::NodeProto& node,
                            const std::vector<const Value*>& parts) {
    Value value;
    value.kind = Kind::kShape;
    for (const Value* part : parts) {
      std::optional<std::vector<Dim>> dims = AsDims(*part);
      if (!dims)
        return Refuse(node,
                      "concatenates values biserve cannot "
                      "follow");
      value.dims.insert(value.dims.end(), dims->begin(), dims->end());
    }
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // Stacking the final states of consecutive layers, as nn.LSTM's h_n.
  absl::Status ConcatStates(const onnx::NodeProto& node,
                            const std::vector<const Value*>& parts,
                            int64_t axis) {
    Value value = *parts[0];
    if (NormalizeAxis(axis, value.dims.size()) != 0) {
      return Refuse(node, "expected final states stacked along axis 0");
    }
    for (size_t i = 1; i < parts.size(); ++i) {
      const Value& part = *parts[i];
      if (part.kind != Kind::kStates ||
          part.form != Value::StatesForm::kStacked ||
          part.layer != value.last_layer + 1 || part.is_c != value.is_c ||
          part.sorted != value.sorted) {
        return Refuse(node,
                      "expected the final states of consecutive "
                      "layers, stacked in order");
      }
      value.last_layer = part.last_layer;
    }
    value.dims[0] = Fixed(2 * (value.last_layer - value.layer + 1));
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // cat(h_n[-2], h_n[-1]): the forward and backward final h of one layer,
  // what Keras' Bidirectional returns without return_sequences.
  absl::Status ConcatFinal(const onnx::NodeProto& node,
                           const std::vector<const Value*>& parts,
                           int64_t axis) {
    if (parts.size() != 2 || parts[1]->kind != Kind::kState ||
        NormalizeAxis(axis, 2) != 1) {
      return Refuse(node, "expected torch.cat((h_n[-2], h_n[-1]), dim=1)");
    }
    const Value& forward = *parts[0];
    const Value& backward = *parts[1];
    if (forward.layer != backward.layer || forward.direction != 0 ||
        backward.direction != 1 || forward.is_c || backward.is_c ||
        forward.sorted != backward.sorted) {
      return Refuse(node,
                    "expected torch.cat((h_n[-2], h_n[-1]), dim=1): "
                    "one layer's forward then backward final h");
    }
    Value value = forward;
    value.kind = Kind::kFinal;
    value.dims = {forward.dims[0], Fixed(2 * layer_hidden_.at(forward.layer))};
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  absl::Status OpSlice(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    std::optional<std::vector<int64_t>> starts = IntsAttribute(node, "starts");
    std::optional<std::vector<int64_t>> ends = IntsAttribute(node, "ends");
    std::optional<std::vector<int64_t>> axes = IntsAttribute(node, "axes");
    std::optional<std::vector<int64_t>> steps;
    if (!starts) {
      starts = ConstInts(Input(node, 1));
      ends = ConstInts(Input(node, 2));
      axes = ConstInts(Input(node, 3));
      steps = ConstInts(Input(node, 4));
    }
    if (!starts || !ends || starts->size() != 1 || ends->size() != 1 ||
        (axes && axes->size() != 1) ||
        (steps && (steps->size() != 1 || (*steps)[0] != 1))) {
      return Refuse(node, "slices with bounds biserve cannot follow");
    }
    const Value& v = **x;
    const int64_t axis = axes ? (*axes)[0] : 0;
    if (v.kind == Kind::kSequence) return RefuseOneStep(node, v, axis);
    if (v.kind == Kind::kStates && v.form == Value::StatesForm::kStacked) {
      return SliceLayers(node, v, axis, (*starts)[0], (*ends)[0]);
    }
    const std::vector<Dim>& dims = v.dims;
    const int a = NormalizeAxis(axis, v.kind == Kind::kShape ? 1 : dims.size());
    if (a < 0) return Refuse(node, "axis out of range");
    if (v.kind == Kind::kShape) {
      const int64_t n = static_cast<int64_t>(dims.size());
      int64_t s = (*starts)[0], e = (*ends)[0];
      if (s < 0) s += n;
      if (e < 0) e += n;
      s = std::clamp<int64_t>(s, 0, n);
      e = std::clamp<int64_t>(e, s, n);
      Value value = v;
      value.dims = std::vector<Dim>(dims.begin() + s, dims.begin() + e);
      SetOutput(node, 0, std::move(value));
      return absl::OkStatus();
    }
    if (v.kind == Kind::kZeros || v.kind == Kind::kGraphInput) {
      // Zeros stay zeros; a graph input sliced is one layer's part of h0.
      Value value = v;
      value.sliced = v.kind == Kind::kGraphInput;
      const Dim d = unifier_.Resolve(dims[a]);
      if (d.fixed()) {
        int64_t s = (*starts)[0], e = (*ends)[0];
        if (s < 0) s += d.size;
        if (e < 0) e += d.size;
        s = std::clamp<int64_t>(s, 0, d.size);
        e = std::clamp<int64_t>(e, s, d.size);
        value.dims[a] = Fixed(e - s);
      } else {
        value.dims[a] = Symbol(unifier_.NewSymbol());
      }
      SetOutput(node, 0, std::move(value));
      return absl::OkStatus();
    }
    return Refuse(node, "slices a value biserve cannot follow");
  }

  // h_n[-2:] and the like: whole layers of the stacked final states.
  absl::Status SliceLayers(const onnx::NodeProto& node, const Value& v,
                           int64_t axis, int64_t start, int64_t end) {
    const int64_t count = 2 * (v.last_layer - v.layer + 1);
    if (start < 0) start += count;
    if (end < 0) end += count;
    start = std::clamp<int64_t>(start, 0, count);
    end = std::clamp<int64_t>(end, start, count);
    if (NormalizeAxis(axis, v.dims.size()) != 0 || start % 2 != 0 ||
        end % 2 != 0 || end == start) {
      return Refuse(node,
                    "slices the final states other than by whole "
                    "layers (both directions)");
    }
    Value value = v;
    value.layer = v.layer + static_cast<int>(start / 2);
    value.last_layer = v.layer + static_cast<int>(end / 2) - 1;
    value.dims[0] = Fixed(end - start);
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  absl::Status OpReduceProd(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    std::optional<std::vector<Dim>> dims = AsDims(**x);
    if (!dims) return Refuse(node, "reduces a value biserve cannot follow");
    int64_t product = 1;
    std::optional<Dim> symbol;
    for (const Dim& dim : *dims) {
      const Dim d = unifier_.Resolve(dim);
      if (d.fixed()) {
        product *= d.size;
      } else if (symbol.has_value()) {
        return Refuse(node, "multiplies two unknown sizes");
      } else {
        symbol = d;
      }
    }
    Value value;
    value.kind = Kind::kShape;
    value.scalar = IntAttribute(node, "keepdims", 1) == 0;
    if (symbol.has_value() && product != 1) {
      return Refuse(node, "multiplies an unknown size");
    }
    value.dims = {symbol.value_or(Fixed(product))};
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // Range(0, B, 1): the positions the un-sort scatters.
  absl::Status OpRange(const onnx::NodeProto& node) {
    std::optional<std::vector<int64_t>> start = ConstInts(Input(node, 0));
    std::optional<std::vector<int64_t>> delta = ConstInts(Input(node, 2));
    const Value* limit = Input(node, 1);
    std::optional<std::vector<Dim>> n =
        limit != nullptr ? AsDims(*limit) : std::nullopt;
    if (!start || !delta || start->size() != 1 || (*start)[0] != 0 ||
        delta->size() != 1 || (*delta)[0] != 1 || !n || n->size() != 1) {
      return Refuse(node, "expected Range(0, batch, 1)");
    }
    Value value;
    value.kind = Kind::kRange;
    value.dims = *n;
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  absl::Status OpConstantOfShape(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> shape = Required(node, 0);
    if (!shape.ok()) return shape.status();
    std::optional<std::vector<Dim>> dims = AsDims(**shape);
    if (!dims) return Refuse(node, "its shape is not one biserve can follow");
    const onnx::AttributeProto* fill = FindAttribute(node, "value");
    if (fill != nullptr) {
      absl::StatusOr<ConstTensor> t = ReadTensor(fill->t());
      if (!t.ok()) return Refuse(node, t.status().message());
      if (!t->AllZero()) {
        return Refuse(node, "fills with a value other than zero");
      }
    }
    Value value;
    value.kind = Kind::kZeros;
    value.dims = *dims;
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // Expand(zeros, shape): PyTorch's default initial state, sized to the
  // batch; zeros whatever the batch.
  absl::Status OpExpand(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    absl::StatusOr<const Value*> shape = Required(node, 1);
    if (!shape.ok()) return shape.status();
    const bool zeros =
        (*x)->kind == Kind::kZeros ||
        ((*x)->kind == Kind::kConstant && (*x)->constant.AllZero());
    std::optional<std::vector<Dim>> dims = AsDims(**shape);
    if (!zeros || !dims) {
      return Refuse(node, "expands a value other than zeros");
    }
    Value value;
    value.kind = Kind::kZeros;
    value.dims = *dims;
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // ---- The length sort of packed sequences ---------------------------------

  absl::Status OpTopK(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    const Value* k = Input(node, 1);
    std::optional<std::vector<Dim>> k_dims =
        k != nullptr ? AsDims(*k) : std::nullopt;
    const Value& lengths = **x;
    if (lengths.kind != Kind::kGraphInput || lengths.sorted ||
        lengths.dims.size() != 1 || !k_dims || k_dims->size() != 1 ||
        IntAttribute(node, "largest", 1) != 1 ||
        IntAttribute(node, "sorted", 1) != 1 ||
        NormalizeAxis(IntAttribute(node, "axis", -1), 1) != 0 ||
        !unifier_.Unify(lengths.dims[0], Symbol(kBatch)) ||
        !unifier_.Unify((*k_dims)[0], Symbol(kBatch))) {
      return Refuse(node,
                    "expected the sort of the batch by length that "
                    "pack_padded_sequence(enforce_sorted=False) "
                    "exports");
    }
    if (absl::Status s =
            AssignRole(node, lengths.input, v1::SignatureTensor::LENGTHS);
        !s.ok()) {
      return s;
    }
    Value values;
    values.kind = Kind::kSortedLengths;
    values.dims = {Symbol(kBatch)};
    values.sorted = true;
    values.input = lengths.input;
    Value indices;
    indices.kind = Kind::kSortIndices;
    indices.dims = {Symbol(kBatch)};
    SetOutput(node, 0, std::move(values));
    SetOutput(node, 1, std::move(indices));
    return absl::OkStatus();
  }

  // zeros.scatter(0, sorted_indices, arange(B)): the inverse permutation.
  absl::Status OpScatterElements(const onnx::NodeProto& node) {
    const Value* data = Input(node, 0);
    const Value* indices = Input(node, 1);
    const Value* updates = Input(node, 2);
    if (data == nullptr || data->kind != Kind::kZeros || indices == nullptr ||
        indices->kind != Kind::kSortIndices || updates == nullptr ||
        updates->kind != Kind::kRange || IntAttribute(node, "axis", 0) != 0 ||
        FindAttribute(node, "reduction") != nullptr) {
      return Refuse(node,
                    "expected the inverse of the length sort "
                    "(pad_packed_sequence's un-sort)");
    }
    Value value;
    value.kind = Kind::kUnsortIndices;
    value.dims = {Symbol(kBatch)};
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // ---- Layout ---------------------------------------------------------------

  absl::Status OpTranspose(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    const Value& v = **x;
    const size_t rank = v.dims.size();
    std::vector<int64_t> perm =
        IntsAttribute(node, "perm").value_or(std::vector<int64_t>());
    if (perm.empty()) {
      for (size_t i = rank; i > 0; --i) perm.push_back(i - 1);
    }
    if (v.kind == Kind::kStates) return TransposeStates(node, v, perm);
    const bool movable = v.kind == Kind::kGraphInput ||
                         v.kind == Kind::kSequence || v.kind == Kind::kZeros ||
                         v.kind == Kind::kRnnOutput;
    std::vector<int64_t> check = perm;
    std::sort(check.begin(), check.end());
    bool valid = perm.size() == rank;
    for (size_t i = 0; valid && i < rank; ++i) valid = check[i] == int64_t(i);
    if (!movable || !valid) {
      return Refuse(node, "transposes a value biserve cannot follow");
    }
    Value value = v;
    for (size_t i = 0; i < rank; ++i) {
      value.dims[i] = v.dims[perm[i]];
      if (v.kind == Kind::kRnnOutput) value.axes[i] = v.axes[perm[i]];
    }
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // One layer's [2, B, H] to [B, 2, H], on the way to [B, 2H]:
  // h_n[-2:].transpose(0, 1).reshape(B, -1).
  absl::Status TransposeStates(const onnx::NodeProto& node, const Value& v,
                               const std::vector<int64_t>& perm) {
    if (v.form != Value::StatesForm::kStacked || v.layer != v.last_layer ||
        perm != std::vector<int64_t>{1, 0, 2}) {
      return Refuse(node,
                    "transposes the final states other than one "
                    "layer's [2, B, H] to [B, 2, H]");
    }
    Value value = v;
    value.form = Value::StatesForm::kBatchMajor;
    value.dims = {v.dims[1], v.dims[0], v.dims[2]};
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // The target dims of a Reshape: 0 copies the input's dim (allowzero = 0),
  // -1 stays -1 (as Fixed(-1)).
  std::optional<std::vector<Dim>> ReshapeTarget(const onnx::NodeProto& node,
                                                const Value& x,
                                                const Value& shape) {
    std::optional<std::vector<Dim>> target = AsDims(shape);
    if (!target) return std::nullopt;
    const bool allow_zero = IntAttribute(node, "allowzero", 0) != 0;
    for (size_t i = 0; i < target->size(); ++i) {
      Dim& d = (*target)[i];
      if (d.fixed() && d.size == 0 && !allow_zero && i < x.dims.size()) {
        d = x.dims[i];
      }
    }
    return target;
  }

  // [T, B, 2, H] -> [T, B, 2H]: the two directions side by side, what
  // nn.LSTM returns and Keras' concat merge gives.
  absl::Status OpReshape(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    absl::StatusOr<const Value*> shape = Required(node, 1);
    if (!shape.ok()) return shape.status();
    const Value& v = **x;
    std::optional<std::vector<Dim>> target = ReshapeTarget(node, v, **shape);
    if (!target)
      return Refuse(node,
                    "reshapes to a shape biserve cannot "
                    "follow");
    if (v.kind == Kind::kRnnOutput) return MergeDirections(node, v, *target);
    if (v.kind == Kind::kStates) return ReshapeStates(node, v, *target);
    if (v.kind == Kind::kSequence || v.kind == Kind::kZeros ||
        v.kind == Kind::kFinal) {
      bool same = target->size() == v.dims.size();
      for (size_t i = 0; same && i < target->size(); ++i) {
        const Dim d = unifier_.Resolve((*target)[i]);
        same = (d.fixed() && d.size == -1) || unifier_.Unify(d, v.dims[i]);
      }
      if (same) {
        SetOutput(node, 0, v);
        return absl::OkStatus();
      }
    }
    return Refuse(node, absl::StrCat("reshapes a ", DimsText(Resolved(v.dims)),
                                     " value to ", DimsText(Resolved(*target)),
                                     "; biserve cannot follow that"));
  }

  // Whether a Reshape target's dim is `dim` or -1 (to be inferred).
  bool MatchesOrInferred(Dim target, Dim dim) {
    const Dim t = unifier_.Resolve(target);
    return (t.fixed() && t.size == -1) || unifier_.Unify(t, dim);
  }

  // h_n.view(layers, 2, B, H), and one layer's [B, 2, H] to [B, 2H] (the
  // same as cat(h_n[-2], h_n[-1]) for the last layer).
  absl::Status ReshapeStates(const onnx::NodeProto& node, const Value& v,
                             const std::vector<Dim>& target) {
    const int64_t hidden = layer_hidden_.at(v.layer);
    const int64_t layers = v.last_layer - v.layer + 1;
    Value value = v;
    if (v.form == Value::StatesForm::kStacked && target.size() == 4 &&
        unifier_.Unify(target[0], Fixed(layers)) &&
        unifier_.Unify(target[1], Fixed(2)) &&
        MatchesOrInferred(target[2], v.dims[1]) &&
        unifier_.Unify(target[3], Fixed(hidden))) {
      value.form = Value::StatesForm::kSplit;
      value.dims = {Fixed(layers), Fixed(2), v.dims[1], Fixed(hidden)};
      SetOutput(node, 0, std::move(value));
      return absl::OkStatus();
    }
    if (v.form == Value::StatesForm::kBatchMajor && !v.is_c &&
        target.size() == 2 && MatchesOrInferred(target[0], v.dims[0]) &&
        MatchesOrInferred(target[1], Fixed(2 * hidden)) &&
        !(unifier_.Resolve(target[0]).fixed() &&
          unifier_.Resolve(target[1]).fixed() &&
          unifier_.Resolve(target[0]).size == -1 &&
          unifier_.Resolve(target[1]).size == -1)) {
      value.kind = Kind::kFinal;
      value.form = Value::StatesForm::kStacked;
      value.dims = {v.dims[0], Fixed(2 * hidden)};
      SetOutput(node, 0, std::move(value));
      return absl::OkStatus();
    }
    return Refuse(
        node,
        absl::StrCat("reshapes the final states ", DimsText(Resolved(v.dims)),
                     " to ", DimsText(Resolved(target)),
                     "; expected h_n.view(layers, 2, batch, hidden) "
                     "or one layer's [batch, 2, hidden] to "
                     "[batch, 2 * hidden]"));
  }

  absl::Status MergeDirections(const onnx::NodeProto& node, const Value& v,
                               const std::vector<Dim>& target) {
    const std::vector<RnnAxis> expected = {
        RnnAxis::kTime, RnnAxis::kBatch, RnnAxis::kDirection, RnnAxis::kHidden};
    const int64_t width = 2 * layer_hidden_.at(v.layer);
    bool ok = v.axes == expected && target.size() == 3 &&
              unifier_.Unify(target[0], v.dims[0]) &&
              unifier_.Unify(target[1], v.dims[1]);
    if (ok) {
      const Dim last = unifier_.Resolve(target[2]);
      ok = last.fixed() && (last.size == -1 || last.size == width);
    }
    if (!ok) {
      return Refuse(node,
                    "expected the recurrent output [T, 2, B, H] "
                    "transposed to [T, B, 2, H] and reshaped to "
                    "[T, B, 2 * H] (nn.LSTM's output)");
    }
    Value value;
    value.kind = Kind::kSequence;
    value.dims = {v.dims[0], v.dims[1], Fixed(width)};
    value.layer = v.layer + 1;
    value.sorted = v.sorted;
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // ---- Recurrent nodes ------------------------------------------------------

  absl::Status CheckRecurrentAttributes(const onnx::NodeProto& node) {
    const std::string op = node.op_type();
    const std::string direction =
        StringAttribute(node, "direction").value_or("forward");
    if (direction != "bidirectional") {
      return Refuse(node,
                    absl::StrCat("direction '", direction,
                                 "' is unidirectional; biserve serves "
                                 "bidirectional models (bidirectional=True)"));
    }
    if (FindAttribute(node, "clip") != nullptr) {
      return Refuse(node,
                    "clip (cell clipping) is not supported: PyTorch "
                    "and Keras cells do not clip");
    }
    if (IntAttribute(node, "input_forget", 0) != 0) {
      return Refuse(node,
                    "input_forget (coupled input and forget gates) is "
                    "not supported");
    }
    if (IntAttribute(node, "layout", 0) != 0) {
      return Refuse(node,
                    "layout 1 (batch-major recurrent inputs) is not "
                    "supported; PyTorch's exporter writes layout 0");
    }
    if (FindAttribute(node, "activation_alpha") != nullptr ||
        FindAttribute(node, "activation_beta") != nullptr) {
      return Refuse(node,
                    "activation_alpha/beta: only the default "
                    "activations are supported");
    }
    if (op == "LSTM" && Input(node, 7) != nullptr) {
      return Refuse(node,
                    "peephole weights (input P) are not supported: "
                    "PyTorch and Keras LSTMs have no peepholes");
    }
    return absl::OkStatus();
  }

  // The activations attribute must be the defaults, except an RNN's may be
  // Relu (nn.RNN(nonlinearity='relu')); returns the RNN's activation.
  absl::StatusOr<std::string> RecurrentActivation(const onnx::NodeProto& node) {
    std::vector<std::string> activations =
        StringsAttribute(node, "activations");
    const std::string op = node.op_type();
    std::vector<std::string> defaults;
    if (op == "LSTM") defaults = {"Sigmoid", "Tanh", "Tanh"};
    if (op == "GRU") defaults = {"Sigmoid", "Tanh"};
    if (op == "RNN") defaults = {"Tanh"};
    if (activations.empty()) return std::string("tanh");
    std::vector<std::string> both = defaults;
    both.insert(both.end(), defaults.begin(), defaults.end());
    if (activations == both) return std::string("tanh");
    if (op == "RNN" &&
        activations == std::vector<std::string>{"Relu", "Relu"}) {
      return std::string("relu");
    }
    return Refuse(
        node, absl::StrCat("activations [", absl::StrJoin(activations, ", "),
                           "] are not supported; expected the defaults [",
                           absl::StrJoin(both, ", "), "]",
                           op == "RNN" ? " or [Relu, Relu]" : ""));
  }

  absl::StatusOr<ConstTensor> RecurrentWeight(const onnx::NodeProto& node,
                                              int i, const char* what,
                                              std::vector<int64_t> shape) {
    const Value* w = Input(node, i);
    if (w == nullptr || w->kind != Kind::kConstant || !w->constant.is_float) {
      return Refuse(node, absl::StrCat(what,
                                       " must be a float constant "
                                       "(an initializer)"));
    }
    if (w->constant.shape != shape) {
      return Refuse(
          node, absl::StrCat(what, " has shape [",
                             absl::StrJoin(w->constant.shape, ", "),
                             "]; expected [", absl::StrJoin(shape, ", "), "]"));
    }
    return w->constant;
  }

  absl::Status OpRecurrent(const onnx::NodeProto& node) {
    if (absl::Status s = CheckRecurrentAttributes(node); !s.ok()) return s;
    absl::StatusOr<std::string> activation = RecurrentActivation(node);
    if (!activation.ok()) return activation.status();
    const std::string op = node.op_type();
    const int gates = op == "LSTM" ? 4 : op == "GRU" ? 3 : 1;
    const Value* w_value = Input(node, 1);
    const int64_t hidden = IntAttribute(node, "hidden_size", 0);
    if (w_value == nullptr || w_value->kind != Kind::kConstant ||
        w_value->constant.shape.size() != 3 || hidden <= 0) {
      return Refuse(node,
                    "expected hidden_size and a constant W "
                    "[2, gates * hidden, input]");
    }
    const int64_t input_size = w_value->constant.shape[2];
    OnnxRecurrentNode layer;
    layer.node = &node;
    layer.hidden_size = static_cast<int>(hidden);
    layer.activation = *activation;
    layer.linear_before_reset = IntAttribute(node, "linear_before_reset", 0);
    absl::StatusOr<ConstTensor> w =
        RecurrentWeight(node, 1, "W", {2, gates * hidden, input_size});
    if (!w.ok()) return w.status();
    absl::StatusOr<ConstTensor> r =
        RecurrentWeight(node, 2, "R", {2, gates * hidden, hidden});
    if (!r.ok()) return r.status();
    layer.w = *std::move(w);
    layer.r = *std::move(r);
    if (Input(node, 3) != nullptr) {
      absl::StatusOr<ConstTensor> b =
          RecurrentWeight(node, 3, "B", {2, 2 * gates * hidden});
      if (!b.ok()) return b.status();
      layer.b = *std::move(b);
    }
    absl::StatusOr<bool> sorted = RecurrentInput(node, input_size);
    if (!sorted.ok()) return sorted.status();
    if (absl::Status s = SequenceLengths(node, *sorted); !s.ok()) return s;
    for (int slot : {5, 6}) {
      if (slot == 6 && op != "LSTM") break;
      if (absl::Status s = InitialState(node, slot, hidden, *sorted); !s.ok()) {
        return s;
      }
    }
    const int index = static_cast<int>(network_.layers.size());
    layer_hidden_[index] = hidden;
    network_.layers.push_back(std::move(layer));
    SetRecurrentOutputs(node, index, hidden, *sorted);
    return absl::OkStatus();
  }

  // X: the graph's input (first layer) or the previous layer's sequence,
  // [T, B, input_size]. Returns whether its batch is length-sorted.
  absl::StatusOr<bool> RecurrentInput(const onnx::NodeProto& node,
                                      int64_t input_size) {
    const Value* x = Input(node, 0);
    const int index = static_cast<int>(network_.layers.size());
    if (x == nullptr) return Refuse(node, "input X is missing");
    const bool first = index == 0 && !network_.embedding.has_value() &&
                       x->kind == Kind::kGraphInput;
    const bool stacked =
        x->kind == Kind::kSequence && x->layer == index && x->heads == 0;
    if (!first && !stacked) {
      return Refuse(node,
                    absl::StrCat("its input X is not ",
                                 index == 0 ? "the model's input"
                                            : "the previous recurrent layer's "
                                              "output (both directions "
                                              "concatenated)"));
    }
    if (x->dims.size() != 3 || !unifier_.Unify(x->dims[0], Symbol(kTime)) ||
        !unifier_.Unify(x->dims[1], Symbol(kBatch)) ||
        !unifier_.Unify(x->dims[2], Fixed(input_size))) {
      return Refuse(node,
                    absl::StrCat("its input X is ", DimsText(Resolved(x->dims)),
                                 "; expected [time, batch, ", input_size, "]"));
    }
    if (first) {
      if (input_types_[x->input] != "FP32") {
        return Refuse(node, "its input X must be float32 features");
      }
      if (absl::Status s =
              AssignRole(node, x->input, v1::SignatureTensor::INPUT);
          !s.ok()) {
        return s;
      }
      network_.input_dim = static_cast<int>(input_size);
    }
    return x->sorted;
  }

  // sequence_lens: none (every step counts), the graph's lengths input, or
  // the lengths sorted with the batch. Every layer must agree.
  absl::Status SequenceLengths(const onnx::NodeProto& node, bool sorted) {
    const Value* lengths = Input(node, 4);
    std::string input;
    if (lengths != nullptr) {
      const bool from_sort = lengths->kind == Kind::kSortedLengths && sorted;
      const bool direct = lengths->kind == Kind::kGraphInput &&
                          lengths->dims.size() == 1 && !sorted &&
                          !lengths->sorted;
      if (!from_sort && !direct) {
        return Refuse(node,
                      "its sequence_lens is not the graph's lengths "
                      "input (in the batch's order)");
      }
      if (direct) {
        if (!unifier_.Unify(lengths->dims[0], Symbol(kBatch))) {
          return Refuse(node, "sequence_lens must be [batch]");
        }
        if (absl::Status s =
                AssignRole(node, lengths->input, v1::SignatureTensor::LENGTHS);
            !s.ok()) {
          return s;
        }
      }
      input = lengths->input;
    }
    if (!network_.layers.empty() && input != lengths_input_) {
      return Refuse(node,
                    "its sequence lengths differ from the first "
                    "layer's");
    }
    lengths_input_ = input;
    return absl::OkStatus();
  }

  // initial_h (slot 5) or initial_c (slot 6): zeros (absent, a zero fill of
  // any batch size, a zero constant sized to the export batch), or a graph
  // input for the first layer.
  absl::Status InitialState(const onnx::NodeProto& node, int slot,
                            int64_t hidden, bool sorted) {
    const Value* state = Input(node, slot);
    const char* name = slot == 5 ? "initial_h" : "initial_c";
    if (state == nullptr) return absl::OkStatus();
    const bool zero_shape = state->dims.size() == 3 &&
                            unifier_.Unify(state->dims[0], Fixed(2)) &&
                            unifier_.Unify(state->dims[2], Fixed(hidden));
    if (state->kind == Kind::kZeros && zero_shape) return absl::OkStatus();
    if (state->kind == Kind::kConstant && state->constant.is_float &&
        state->constant.AllZero() && state->constant.shape.size() == 3 &&
        state->constant.shape[0] == 2 && state->constant.shape[2] == hidden) {
      return absl::OkStatus();
    }
    if (state->kind != Kind::kGraphInput) {
      return Refuse(node, absl::StrCat(name,
                                       " is neither zeros nor a graph "
                                       "input"));
    }
    if (!network_.layers.empty() || state->sliced) {
      return Refuse(
          node, absl::StrCat("graph input '", state->input, "' feeds ", name,
                             " of a layer after the first (layer ",
                             network_.layers.size(),
                             "): biserve takes initial states for the first "
                             "layer only; with num_layers > 1, h0/c0 "
                             "would feed the second layer too"));
    }
    if (state->sorted != sorted ||
        !unifier_.Unify(state->dims[1], Symbol(kBatch)) || !zero_shape) {
      return Refuse(node, absl::StrCat(name, " '", state->input, "' is ",
                                       DimsText(Resolved(state->dims)),
                                       "; expected [2, batch, ", hidden, "]"));
    }
    return AssignRole(node, state->input,
                      slot == 5 ? v1::SignatureTensor::INITIAL_H
                                : v1::SignatureTensor::INITIAL_C);
  }

  void SetRecurrentOutputs(const onnx::NodeProto& node, int index,
                           int64_t hidden, bool sorted) {
    Value y;
    y.kind = Kind::kRnnOutput;
    y.dims = {Symbol(kTime), Fixed(2), Symbol(kBatch), Fixed(hidden)};
    y.axes = {RnnAxis::kTime, RnnAxis::kDirection, RnnAxis::kBatch,
              RnnAxis::kHidden};
    y.layer = index;
    y.sorted = sorted;
    SetOutput(node, 0, std::move(y));
    for (int i : {1, 2}) {
      Value states;
      states.kind = Kind::kStates;
      states.dims = {Fixed(2), Symbol(kBatch), Fixed(hidden)};
      states.layer = index;
      states.last_layer = index;
      states.is_c = i == 2;
      states.sorted = sorted;
      SetOutput(node, i, std::move(states));
    }
  }

  // ---- Dense heads ----------------------------------------------------------

  // A value a Linear layer may read: a layer's sequence or the final
  // vector, with its last dense (if any) complete.
  bool HeadInput(const Value& v) {
    return (v.kind == Kind::kSequence && v.layer > 0) || v.kind == Kind::kFinal;
  }

  absl::Status StartDense(const onnx::NodeProto& node, const Value& x,
                          ConstTensor kernel) {
    if (!HeadInput(x) || x.heads != static_cast<int>(network_.heads.size())) {
      return Refuse(node,
                    "a Linear layer must follow the last recurrent "
                    "layer (or another Linear layer)");
    }
    const Dim width = unifier_.Resolve(x.dims.back());
    if (!width.fixed() || kernel.shape.size() != 2 ||
        kernel.shape[0] != width.size) {
      return Refuse(
          node,
          absl::StrCat("its weight is [", absl::StrJoin(kernel.shape, ", "),
                       "] for an input of width ", DimsText({width})));
    }
    OnnxDense dense;
    dense.name = node.name();
    dense.kernel = std::move(kernel);
    Value value = x;
    value.dims.back() = Fixed(dense.kernel.shape[1]);
    value.heads = x.heads + 1;
    value.head_open = true;
    network_.heads.push_back(std::move(dense));
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  absl::Status OpMatMul(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    const Value* w = Input(node, 1);
    if (w == nullptr || w->kind != Kind::kConstant || !w->constant.is_float) {
      return Refuse(node,
                    "expected a Linear layer: x times a constant "
                    "weight");
    }
    return StartDense(node, **x, w->constant);
  }

  // The bias of the Linear layer just started (MatMul + Add).
  absl::Status OpAdd(const onnx::NodeProto& node) {
    const Value* a = Input(node, 0);
    const Value* b = Input(node, 1);
    if (a != nullptr && a->kind == Kind::kConstant) std::swap(a, b);
    if (a == nullptr || b == nullptr || b->kind != Kind::kConstant ||
        !b->constant.is_float || !a->head_open || network_.heads.empty() ||
        a->heads != static_cast<int>(network_.heads.size())) {
      return Refuse(node,
                    "expected the bias of a Linear layer (MatMul then "
                    "Add of a constant)");
    }
    OnnxDense& dense = network_.heads.back();
    const int64_t units = dense.kernel.shape[1];
    if (dense.bias.has_value() || dense.activation != "linear" ||
        b->constant.size() != units) {
      return Refuse(node, absl::StrCat("expected a bias of ", units,
                                       " values for the Linear layer '",
                                       dense.name, "'"));
    }
    dense.bias = b->constant;
    dense.bias->shape = {units};
    SetOutput(node, 0, *a);
    return absl::OkStatus();
  }

  absl::Status OpGemm(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    const Value* w = Input(node, 1);
    const Value* c = Input(node, 2);
    if (w == nullptr || w->kind != Kind::kConstant || !w->constant.is_float ||
        w->constant.shape.size() != 2 ||
        FloatAttribute(node, "alpha").value_or(1.0f) != 1.0f ||
        FloatAttribute(node, "beta").value_or(1.0f) != 1.0f ||
        IntAttribute(node, "transA", 0) != 0 ||
        (c != nullptr &&
         (c->kind != Kind::kConstant || !c->constant.is_float))) {
      return Refuse(node,
                    "expected a Linear layer: Gemm with alpha = beta "
                    "= 1, a constant weight and bias");
    }
    ConstTensor kernel = w->constant;
    if (IntAttribute(node, "transB", 0) != 0) {
      const int64_t rows = kernel.shape[0], cols = kernel.shape[1];
      std::vector<float> t(kernel.floats.size());
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < cols; ++j) {
          t[j * rows + i] = kernel.floats[i * cols + j];
        }
      }
      kernel.floats = std::move(t);
      kernel.shape = {cols, rows};
    }
    if (absl::Status s = StartDense(node, **x, std::move(kernel)); !s.ok()) {
      return s;
    }
    if (c != nullptr) {
      OnnxDense& dense = network_.heads.back();
      if (c->constant.size() != dense.kernel.shape[1]) {
        return Refuse(node, "its bias does not match its units");
      }
      dense.bias = c->constant;
      dense.bias->shape = {dense.kernel.shape[1]};
    }
    return absl::OkStatus();
  }

  absl::Status OpActivation(const onnx::NodeProto& node) {
    absl::StatusOr<const Value*> x = Required(node, 0);
    if (!x.ok()) return x.status();
    const Value& v = **x;
    const std::string op = node.op_type();
    if (!HeadInput(v) || !v.head_open || network_.heads.empty() ||
        v.heads != static_cast<int>(network_.heads.size()) ||
        network_.heads.back().activation != "linear") {
      return Refuse(node,
                    "an activation is supported only right after a "
                    "Linear layer");
    }
    if (op == "Softmax" || op == "LogSoftmax") {
      const int64_t fallback = opset_ >= 13 ? -1 : 1;
      const int axis =
          NormalizeAxis(IntAttribute(node, "axis", fallback), v.dims.size());
      if (axis != static_cast<int>(v.dims.size()) - 1) {
        return Refuse(node, "softmax must be over the last axis (dim=-1)");
      }
    }
    static const std::map<std::string, std::string> kKeras = {
        {"Softmax", "softmax"},
        {"LogSoftmax", "log_softmax"},
        {"Sigmoid", "sigmoid"},
        {"Tanh", "tanh"},
        {"Relu", "relu"}};
    network_.heads.back().activation = kKeras.at(op);
    Value value = v;
    value.head_open = false;
    SetOutput(node, 0, std::move(value));
    return absl::OkStatus();
  }

  // ---- Outputs and inputs ---------------------------------------------------

  // Which of a [B, T, ..] / [T, B, ..] value's first two axes is time.
  std::optional<bool> TimeMajor(const std::vector<Dim>& dims) {
    if (dims.size() < 2) return std::nullopt;
    const Dim a = unifier_.Resolve(dims[0]);
    const Dim b = unifier_.Resolve(dims[1]);
    if (a.symbol == kBatch && b.symbol == kTime) return false;
    if (a.symbol == kTime && b.symbol == kBatch) return true;
    return std::nullopt;
  }

  absl::Status ReadOutputs() {
    const int layers = static_cast<int>(network_.layers.size());
    const int heads = static_cast<int>(network_.heads.size());
    if (layers == 0) {
      return absl::InvalidArgumentError(
          "the graph has no bidirectional LSTM, GRU or RNN node that its "
          "outputs depend on");
    }
    bool sequence_output = false;
    bool final_output = false;
    for (const onnx::ValueInfoProto& output : graph_.output()) {
      auto it = values_.find(output.name());
      if (it == values_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "graph output '", output.name(), "' is produced by no node"));
      }
      const Value& v = it->second;
      const auto refuse = [&](absl::string_view why) {
        return absl::InvalidArgumentError(
            absl::StrCat("graph output '", output.name(), "': ", why));
      };
      if (v.sorted) return refuse("its batch is still sorted by length");
      OnnxSignatureTensor tensor{output.name(), v1::SignatureTensor::OUTPUT,
                                 "FP32", false};
      if (v.kind == Kind::kSequence && v.layer == layers && v.heads == heads) {
        std::optional<bool> time_major = TimeMajor(v.dims);
        if (!time_major || v.dims.size() != 3) {
          return refuse("expected a [batch, time, features] sequence");
        }
        tensor.time_major = *time_major;
        sequence_output = true;
      } else if (v.kind == Kind::kFinal && v.layer == layers - 1 &&
                 v.heads == heads) {
        final_output = true;
      } else if (v.kind == Kind::kStates &&
                 v.form == Value::StatesForm::kStacked && v.layer == 0 &&
                 v.last_layer == layers - 1) {
        tensor.role = v.is_c ? v1::SignatureTensor::FINAL_C
                             : v1::SignatureTensor::FINAL_H;
      } else {
        return refuse(absl::StrCat(
            "is not the model's output (the last layer's sequence or ",
            "cat(h_n[-2], h_n[-1]), after ", heads,
            " Linear layer(s)) nor the final states of all layers"));
      }
      for (const OnnxSignatureTensor& seen : network_.outputs) {
        if (seen.role == tensor.role) {
          return refuse(
              absl::StrCat("plays the same role as '", seen.name, "'"));
        }
      }
      network_.outputs.push_back(std::move(tensor));
    }
    if (sequence_output && final_output) {
      return absl::InvalidArgumentError(
          "the graph outputs both the last layer's sequence and a head on "
          "its final states; biserve serves one model output");
    }
    network_.returns_sequences = !final_output;
    return absl::OkStatus();
  }

  absl::Status CheckInputs() {
    for (const std::string& name : input_order_) {
      auto it = roles_.find(name);
      if (it == roles_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "graph input '", name,
            "' is not used as the model's input, its lengths or the first "
            "layer's initial state"));
      }
      OnnxSignatureTensor tensor{name, it->second, input_types_[name], false};
      if (it->second == v1::SignatureTensor::INPUT) {
        std::optional<bool> time_major = TimeMajor(input_dims_[name]);
        if (!time_major) {
          return absl::InvalidArgumentError(
              absl::StrCat("graph input '", name,
                           "': its batch and time axes could not "
                           "be told apart"));
        }
        tensor.time_major = *time_major;
      }
      if ((it->second == v1::SignatureTensor::INITIAL_H ||
           it->second == v1::SignatureTensor::INITIAL_C) &&
          tensor.datatype != "FP32") {
        return absl::InvalidArgumentError(
            absl::StrCat("graph input '", name, "' must be float32"));
      }
      if (it->second == v1::SignatureTensor::LENGTHS &&
          tensor.datatype == "FP32") {
        return absl::InvalidArgumentError(
            absl::StrCat("graph input '", name, "' must be integers"));
      }
      network_.inputs.push_back(std::move(tensor));
    }
    return absl::OkStatus();
  }

 public:
  void set_opset(int64_t opset) { opset_ = opset; }

 private:
  const onnx::GraphProto& graph_;
  int64_t opset_ = 14;
  Unifier unifier_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::vector<Dim>> input_dims_;
  std::map<std::string, std::string> input_types_;
  std::vector<std::string> input_order_;
  std::map<std::string, Role> roles_;
  std::map<int, int64_t> layer_hidden_;
  std::string lengths_input_;
  // Elements constant folding may still create: a few times the weights, so
  // that a hostile graph cannot grow constants without bound.
  int64_t fold_budget_ = int64_t{1} << 20;
  OnnxNetwork network_;
};

}  // namespace

absl::StatusOr<OnnxNetwork> ReadOnnxNetwork(const onnx::GraphProto& graph,
                                            int64_t opset) {
  GraphReader reader(graph);
  reader.set_opset(opset);
  return reader.Read();
}

}  // namespace biserve::onnx_import
