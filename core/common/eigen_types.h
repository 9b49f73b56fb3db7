// The one header that includes Eigen: every matrix in core/ is row-major
// float32, viewed through these aliases.
#pragma once

#include <Eigen/Core>

namespace biserve {

using RowMatrix =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowVector = Eigen::Matrix<float, 1, Eigen::Dynamic>;

using MatrixMap = Eigen::Map<RowMatrix>;
using ConstMatrixMap = Eigen::Map<const RowMatrix>;
using VectorMap = Eigen::Map<RowVector>;
// A contiguous run of values for element-wise (vectorised) math.
using ArrayMap = Eigen::Map<Eigen::ArrayXf>;
using ConstVectorMap = Eigen::Map<const RowVector>;

}  // namespace biserve
