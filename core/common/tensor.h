// A dense float32 tensor that owns its values, row-major.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace biserve {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;  // product(shape) values, last axis fastest

  bool empty() const { return shape.empty() && values.empty(); }
};

// "[2, 3]" for messages.
inline std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Product of the dimensions; 1 for a scalar shape.
inline int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace biserve
