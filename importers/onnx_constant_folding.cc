#include "importers/onnx_constant_folding.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace biserve::onnx_import {
namespace {

int64_t Product(const std::vector<int64_t>& shape, size_t from = 0,
                size_t to = SIZE_MAX) {
  int64_t p = 1;
  for (size_t i = from; i < std::min(to, shape.size()); ++i) p *= shape[i];
  return p;
}

std::vector<int64_t> Strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t i = shape.size(); i > 1; --i) {
    strides[i - 2] = strides[i - 1] * shape[i - 1];
  }
  return strides;
}

// A tensor of `shape` whose element i is x's element at source[i].
ConstTensor Take(const ConstTensor& x, std::vector<int64_t> shape,
                 const std::vector<int64_t>& source) {
  ConstTensor out;
  out.is_float = x.is_float;
  out.shape = std::move(shape);
  if (x.is_float) {
    out.floats.reserve(source.size());
    for (int64_t s : source) out.floats.push_back(x.floats[s]);
  } else {
    out.ints.reserve(source.size());
    for (int64_t s : source) out.ints.push_back(x.ints[s]);
  }
  return out;
}

// Calls f(out_index, source_flat) for every element of an output of
// `shape`, where source_flat = sum(index[i] * stride[i]) + offset.
template <typename F>
void ForEachIndex(const std::vector<int64_t>& shape, F f) {
  const int64_t count = Product(shape);
  std::vector<int64_t> index(shape.size(), 0);
  for (int64_t n = 0; n < count; ++n) {
    f(index);
    for (size_t i = shape.size(); i > 0; --i) {
      if (++index[i - 1] < shape[i - 1]) break;
      index[i - 1] = 0;
    }
  }
}

absl::StatusOr<int64_t> Axis(int64_t axis, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) {
    return absl::InvalidArgumentError(
        absl::StrCat("axis ", axis, " is out of range for rank ", rank));
  }
  return axis < 0 ? axis + r : axis;
}

}  // namespace

absl::StatusOr<ConstTensor> FoldTranspose(const ConstTensor& x,
                                          std::vector<int64_t> perm) {
  const size_t rank = x.shape.size();
  if (perm.empty()) {
    for (size_t i = rank; i > 0; --i) perm.push_back(i - 1);
  }
  std::vector<int64_t> check = perm;
  std::sort(check.begin(), check.end());
  for (size_t i = 0; i < check.size(); ++i) {
    if (check.size() != rank || check[i] != static_cast<int64_t>(i)) {
      return absl::InvalidArgumentError("perm is not a permutation");
    }
  }
  const std::vector<int64_t> strides = Strides(x.shape);
  std::vector<int64_t> shape(rank);
  for (size_t i = 0; i < rank; ++i) shape[i] = x.shape[perm[i]];
  std::vector<int64_t> source;
  source.reserve(x.size());
  ForEachIndex(shape, [&](const std::vector<int64_t>& index) {
    int64_t s = 0;
    for (size_t i = 0; i < rank; ++i) s += index[i] * strides[perm[i]];
    source.push_back(s);
  });
  return Take(x, std::move(shape), source);
}

absl::StatusOr<ConstTensor> FoldSlice(const ConstTensor& x,
                                      const std::vector<int64_t>& starts,
                                      const std::vector<int64_t>& ends,
                                      std::vector<int64_t> axes,
                                      std::vector<int64_t> steps) {
  const size_t rank = x.shape.size();
  if (axes.empty()) {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(i);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() ||
      steps.size() != starts.size()) {
    return absl::InvalidArgumentError("slice bounds of different lengths");
  }
  std::vector<int64_t> first(rank, 0), step(rank, 1), shape = x.shape;
  for (size_t k = 0; k < starts.size(); ++k) {
    absl::StatusOr<int64_t> a = Axis(axes[k], rank);
    if (!a.ok()) return a.status();
    const int64_t n = x.shape[*a];
    if (steps[k] == 0) return absl::InvalidArgumentError("slice step 0");
    int64_t s = starts[k] < 0 ? starts[k] + n : starts[k];
    int64_t e = ends[k] < 0 ? ends[k] + n : ends[k];
    if (steps[k] > 0) {
      s = std::clamp<int64_t>(s, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      shape[*a] = e > s ? (e - s + steps[k] - 1) / steps[k] : 0;
    } else {
      s = std::clamp<int64_t>(s, -1, n - 1);
      e = std::clamp<int64_t>(e, -1, n - 1);
      shape[*a] = s > e ? (s - e - steps[k] - 1) / -steps[k] : 0;
    }
    first[*a] = s;
    step[*a] = steps[k];
  }
  const std::vector<int64_t> strides = Strides(x.shape);
  std::vector<int64_t> source;
  ForEachIndex(shape, [&](const std::vector<int64_t>& index) {
    int64_t s = 0;
    for (size_t i = 0; i < rank; ++i) {
      s += (first[i] + index[i] * step[i]) * strides[i];
    }
    source.push_back(s);
  });
  return Take(x, std::move(shape), source);
}

absl::StatusOr<ConstTensor> FoldConcat(
    const std::vector<const ConstTensor*>& xs, int64_t axis) {
  if (xs.empty()) return absl::InvalidArgumentError("nothing to concatenate");
  const ConstTensor& first = *xs[0];
  absl::StatusOr<int64_t> a = Axis(axis, first.shape.size());
  if (!a.ok()) return a.status();
  std::vector<int64_t> shape = first.shape;
  shape[*a] = 0;
  for (const ConstTensor* x : xs) {
    bool same =
        x->is_float == first.is_float && x->shape.size() == first.shape.size();
    for (size_t i = 0; same && i < first.shape.size(); ++i) {
      same = i == static_cast<size_t>(*a) || x->shape[i] == first.shape[i];
    }
    if (!same) return absl::InvalidArgumentError("concatenates unlike shapes");
    shape[*a] += x->shape[*a];
  }
  ConstTensor out;
  out.is_float = first.is_float;
  out.shape = shape;
  const int64_t outer = Product(first.shape, 0, *a);
  for (int64_t o = 0; o < outer; ++o) {
    for (const ConstTensor* x : xs) {
      const int64_t chunk = Product(x->shape, *a);
      if (x->is_float) {
        out.floats.insert(out.floats.end(), x->floats.begin() + o * chunk,
                          x->floats.begin() + (o + 1) * chunk);
      } else {
        out.ints.insert(out.ints.end(), x->ints.begin() + o * chunk,
                        x->ints.begin() + (o + 1) * chunk);
      }
    }
  }
  return out;
}

absl::StatusOr<ConstTensor> FoldGather(const ConstTensor& x,
                                       const ConstTensor& indices,
                                       int64_t axis) {
  absl::StatusOr<int64_t> a = Axis(axis, x.shape.size());
  if (!a.ok()) return a.status();
  if (indices.is_float) return absl::InvalidArgumentError("float indices");
  const int64_t n = x.shape[*a];
  std::vector<int64_t> picks;
  for (int64_t i : indices.ints) {
    if (i < -n || i >= n) {
      return absl::InvalidArgumentError("gather index out of range");
    }
    picks.push_back(i < 0 ? i + n : i);
  }
  const int64_t outer = Product(x.shape, 0, *a);
  const int64_t inner = Product(x.shape, *a + 1);
  std::vector<int64_t> shape(x.shape.begin(), x.shape.begin() + *a);
  shape.insert(shape.end(), indices.shape.begin(), indices.shape.end());
  shape.insert(shape.end(), x.shape.begin() + *a + 1, x.shape.end());
  std::vector<int64_t> source;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t p : picks) {
      for (int64_t i = 0; i < inner; ++i) {
        source.push_back((o * n + p) * inner + i);
      }
    }
  }
  return Take(x, std::move(shape), source);
}

absl::StatusOr<ConstTensor> FoldReshape(const ConstTensor& x,
                                        const std::vector<int64_t>& shape,
                                        bool allow_zero) {
  std::vector<int64_t> out = shape;
  int inferred = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0 && !allow_zero) {
      if (i >= x.shape.size()) return absl::InvalidArgumentError("bad 0 dim");
      out[i] = x.shape[i];
    }
    if (out[i] == -1) {
      if (inferred >= 0) return absl::InvalidArgumentError("two -1 dims");
      inferred = static_cast<int>(i);
    } else if (out[i] < 0) {
      return absl::InvalidArgumentError("negative dim");
    } else {
      known *= out[i];
      if (known > x.size() && x.size() > 0) {
        return absl::InvalidArgumentError("reshape to more elements");
      }
    }
  }
  if (inferred >= 0) {
    if (known == 0 || x.size() % known != 0) {
      return absl::InvalidArgumentError("cannot infer the -1 dim");
    }
    out[inferred] = x.size() / known;
    known *= out[inferred];
  }
  if (known != x.size()) {
    return absl::InvalidArgumentError("reshape changes the element count");
  }
  ConstTensor result = x;
  result.shape = std::move(out);
  return result;
}

absl::StatusOr<ConstTensor> FoldSqueeze(const ConstTensor& x,
                                        std::vector<int64_t> axes) {
  std::vector<bool> drop(x.shape.size(), false);
  if (axes.empty()) {
    for (size_t i = 0; i < x.shape.size(); ++i) drop[i] = x.shape[i] == 1;
  }
  for (int64_t axis : axes) {
    absl::StatusOr<int64_t> a = Axis(axis, x.shape.size());
    if (!a.ok()) return a.status();
    if (x.shape[*a] != 1) {
      return absl::InvalidArgumentError("squeezes an axis whose size is not 1");
    }
    drop[*a] = true;
  }
  ConstTensor result = x;
  result.shape.clear();
  for (size_t i = 0; i < x.shape.size(); ++i) {
    if (!drop[i]) result.shape.push_back(x.shape[i]);
  }
  return result;
}

absl::StatusOr<ConstTensor> FoldUnsqueeze(const ConstTensor& x,
                                          std::vector<int64_t> axes) {
  const size_t rank = x.shape.size() + axes.size();
  for (int64_t& axis : axes) {
    absl::StatusOr<int64_t> a = Axis(axis, rank);
    if (!a.ok()) return a.status();
    axis = *a;
  }
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) {
    return absl::InvalidArgumentError("repeated axis");
  }
  ConstTensor result = x;
  for (int64_t a : axes) result.shape.insert(result.shape.begin() + a, 1);
  return result;
}

}  // namespace biserve::onnx_import
