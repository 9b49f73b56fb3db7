#include "core/eval/direction_runner.h"

#include <algorithm>

#include "core/kernels/activation.h"
#include "core/common/eigen_types.h"
#include "core/kernels/vector_math.h"

namespace biserve {
namespace {

// One row's gate slice as a span, for Activate.
inline absl::Span<float> Slice(float* row, int gate, int units) {
  return absl::Span<float>(row + static_cast<int64_t>(gate) * units, units);
}

// Cell updates for one sequence (one row). `g` holds h * U for the row (plus
// the recurrent bias where the cell has one); `x` is the row's input
// projection; `h` and `c` are the row's state, updated in place.

// Keras LSTMCell: i, f, c~, o = gates; c' = f c + i c~; h' = o act(c').
BISERVE_CLONES void LstmRow(const RnnDirection& d, const float* x, float* g,
                            float* h, float* c, float* scratch) {
  const int u = d.units;
  for (int j = 0; j < 4 * u; ++j) g[j] += x[j];
  Activate(d.recurrent_activation, Slice(g, 0, u));
  Activate(d.recurrent_activation, Slice(g, 1, u));
  Activate(d.activation, Slice(g, 2, u));
  Activate(d.recurrent_activation, Slice(g, 3, u));
  for (int j = 0; j < u; ++j) {
    c[j] = g[u + j] * c[j] + g[j] * g[2 * u + j];
    scratch[j] = c[j];
  }
  Activate(d.activation, absl::Span<float>(scratch, u));
  for (int j = 0; j < u; ++j) h[j] = g[3 * u + j] * scratch[j];
}

// Keras GRUCell, reset_after = true: g = h U + b_rec;
// z, r = rec_act(x_zr + g_zr); h~ = act(x_h + r g_h); h' = z h + (1 - z) h~.
BISERVE_CLONES void GruResetAfterRow(const RnnDirection& d, const float* x,
                                     float* g, float* h) {
  const int u = d.units;
  for (int j = 0; j < 2 * u; ++j) g[j] += x[j];
  Activate(d.recurrent_activation, Slice(g, 0, u));
  Activate(d.recurrent_activation, Slice(g, 1, u));
  float* hh = g + 2 * u;
  for (int j = 0; j < u; ++j) hh[j] = x[2 * u + j] + g[u + j] * hh[j];
  Activate(d.activation, Slice(g, 2, u));
  for (int j = 0; j < u; ++j) h[j] = g[j] * h[j] + (1.0f - g[j]) * hh[j];
}

}  // namespace

void RunDirection(const RnnDirection& d, const PackedLayout& layout,
                  int first_row, int end_row, bool reverse_output,
                  const DirectionBuffers& io) {
  if (first_row >= end_row) return;
  const int u = d.units;
  const int gu = d.gates() * u;
  const int rows = end_row - first_row;
  // This range's state rows, [rows, units]; row r here is sorted row
  // first_row + r of the batch.
  MatrixMap h(io.h + static_cast<int64_t>(first_row) * u, rows, u);
  float* const c =
      io.c == nullptr ? nullptr : io.c + static_cast<int64_t>(first_row) * u;
  const RowMatrix& recurrent = d.recurrent_kernel;  // [units, G * units]
  const bool packed = d.recurrent_packed.rows() > 0;
  // h * U of the live rows, [rows, G * units] (packed: rounded up to whole
  // panels; the extra columns are never read).
  RowMatrix gates(rows, packed ? d.recurrent_packed.padded_cols() : gu);
  RowMatrix scratch(rows, u);  // per-row temporaries, [rows, units]
  // gates[0:k, 0:G * units] = h[0:k] * U, for the cells with one GEMM.
  auto recurrent_gemm = [&](int k) {
    if (packed) {
      PackedGemm(h.data(), u, k, d.recurrent_packed, gates.data(),
                 gates.cols());
    } else {
      gates.topRows(k).leftCols(gu).noalias() = h.topRows(k) * recurrent;
    }
  };

  // Lengths are sorted, so the range's first row is its longest.
  for (int64_t s = 0; s < layout.length(first_row); ++s) {
    // Live rows are 0 .. k - 1 (a prefix, as alive(s) is a batch prefix).
    const int k = std::min(end_row, layout.alive(s)) - first_row;
    // The time a row reads at this step, and the time it writes.
    auto time = [&](int r, bool reverse) {
      return reverse ? layout.length(first_row + r) - 1 - s : s;
    };
    // Packed row of range row r at the time it reads.
    auto packed_row = [&](int r) {
      return layout.row(first_row + r, time(r, d.go_backwards));
    };
    auto input_row = [&](int r) {
      return io.projection + packed_row(r) * io.projection_stride;
    };
    // Whether a row's step counts (Keras' mask); a skipped row still rides
    // along in the step's GEMM, but its state is left alone.
    auto kept = [&](int r) {
      return io.keep == nullptr || io.keep[packed_row(r)] != 0;
    };

    switch (d.cell) {
      case CellType::kLstm:
        recurrent_gemm(k);
        for (int r = 0; r < k; ++r) {
          if (!kept(r)) continue;
          LstmRow(d, input_row(r), &gates(r, 0), &h(r, 0),
                  c + static_cast<int64_t>(r) * u, &scratch(r, 0));
        }
        break;
      case CellType::kGru:
        if (d.reset_after) {
          recurrent_gemm(k);  // the packed kernel adds the bias itself
          if (!packed) {
            gates.topRows(k).leftCols(gu).rowwise() += d.recurrent_bias;
          }
          for (int r = 0; r < k; ++r) {
            if (!kept(r)) continue;
            GruResetAfterRow(d, input_row(r), &gates(r, 0), &h(r, 0));
          }
        } else {
          // Keras GRUCell, reset_after = false: the reset gate scales h
          // before the candidate's matmul, so that matmul waits for r.
          gates.topRows(k).leftCols(2 * u).noalias() =
              h.topRows(k) * recurrent.leftCols(2 * u);
          for (int r = 0; r < k; ++r) {
            const float* x = input_row(r);
            float* g = &gates(r, 0);
            for (int j = 0; j < 2 * u; ++j) g[j] += x[j];
            Activate(d.recurrent_activation, Slice(g, 0, u));
            Activate(d.recurrent_activation, Slice(g, 1, u));
            for (int j = 0; j < u; ++j) scratch(r, j) = g[u + j] * h(r, j);
          }
          gates.topRows(k).rightCols(u).noalias() =
              scratch.topRows(k) * recurrent.rightCols(u);
          for (int r = 0; r < k; ++r) {
            if (!kept(r)) continue;
            const float* x = input_row(r);
            float* g = &gates(r, 0);
            float* hh = g + 2 * u;
            for (int j = 0; j < u; ++j) hh[j] += x[2 * u + j];
            Activate(d.activation, Slice(g, 2, u));
            for (int j = 0; j < u; ++j) {
              h(r, j) = g[j] * h(r, j) + (1.0f - g[j]) * hh[j];
            }
          }
        }
        break;
      case CellType::kSimpleRnn:
      case CellType::kUnspecified:  // rejected by Model::Create
        // Keras SimpleRNNCell: h' = act(x W + b + h U).
        recurrent_gemm(k);
        for (int r = 0; r < k; ++r) {
          if (!kept(r)) continue;
          const float* x = input_row(r);
          for (int j = 0; j < u; ++j) h(r, j) = gates(r, j) + x[j];
          Activate(d.activation, absl::Span<float>(&h(r, 0), u));
        }
        break;
    }

    if (io.started != nullptr) {
      for (int r = 0; r < k; ++r) io.started[first_row + r] |= kept(r) ? 1 : 0;
    }
    if (io.output != nullptr) {
      for (int r = 0; r < k; ++r) {
        float* out =
            io.output + layout.row(first_row + r, time(r, reverse_output)) *
                            io.output_stride;
        if (kept(r) || io.masked_step_output == MaskedStepOutput::kState) {
          std::copy_n(&h(r, 0), u, out);
        } else {
          std::fill_n(out, u, 0.0f);
        }
      }
    }
  }
}

}  // namespace biserve
