#include "core/eval/direction_runner.h"

#include <algorithm>
#include <cstdlib>

#include "core/common/eigen_types.h"
#include "core/kernels/activation.h"
#include "core/kernels/vector_math.h"

namespace biserve {
namespace {

// One row's gate slice as a span, for Activate.
inline absl::Span<float> Slice(float* row, int gate, int units) {
  return absl::Span<float>(row + static_cast<int64_t>(gate) * units, units);
}

// The working set of one row range [first_row, end_row): its state rows and
// the per-step temporaries, allocated once per RunDirection call.
struct RangeWork {
  RangeWork(const RnnDirection& d, const DirectionBuffers& io, int first_row,
            int end_row)
      : h(io.h + static_cast<int64_t>(first_row) * d.units, end_row - first_row,
          d.units),
        c(io.c == nullptr ? nullptr
                          : io.c + static_cast<int64_t>(first_row) * d.units),
        gates(end_row - first_row,
              d.recurrent_packed.padded_cols() +
                  d.recurrent_candidate_packed.padded_cols()),
        scratch(end_row - first_row, d.units) {}

  // Row r here is sorted row first_row + r of the batch.
  MatrixMap h;  // [rows, units]
  float* c;     // [rows, units], LSTM's cell state; null for other cells
  // h * U of the live rows, [rows, G * units] rounded up to PackedGemm's
  // whole panels (the extra columns are never read). GRU with reset_after =
  // false: its z and r columns' panels, then the candidate's.
  RowMatrix gates;
  RowMatrix scratch;  // per-row temporaries, [rows, units]
};

// The rows of one processing step `s` of a row range: which packed row each
// range row reads, and whether its step counts.
class StepRows {
 public:
  StepRows(const PackedLayout& layout, const DirectionBuffers& io,
           bool go_backwards, int first_row, int64_t s)
      : layout_(layout),
        io_(io),
        go_backwards_(go_backwards),
        first_row_(first_row),
        s_(s) {}

  // The time range row r reads (go_backwards) or writes (reverse) at s.
  int64_t Time(int r, bool reverse) const {
    return reverse ? layout_.length(first_row_ + r) - 1 - s_ : s_;
  }
  // Packed row of range row r at the time it reads.
  int64_t Row(int r) const {
    return layout_.row(first_row_ + r, Time(r, go_backwards_));
  }
  // Range row r's input projection, [G * units].
  const float* Input(int r) const {
    return io_.projection + Row(r) * io_.projection_stride;
  }
  // Whether a row's step counts (Keras' mask); a skipped row still rides
  // along in the step's GEMM, but its state is left alone.
  bool Kept(int r) const {
    return io_.keep == nullptr || io_.keep[Row(r)] != 0;
  }

 private:
  const PackedLayout& layout_;
  const DirectionBuffers& io_;
  const bool go_backwards_;
  const int first_row_;
  const int64_t s_;
};

// gates[0:k, 0:G * units] = h[0:k] * U, for the cells with one GEMM a step.
void RecurrentGemm(const RnnDirection& d, int k, RangeWork& w) {
  PackedGemm(w.h.data(), d.units, k, d.recurrent_packed, w.gates.data(),
             w.gates.cols());
}

// Row updates. `g` holds h * U for the row (plus the recurrent bias where
// the cell has one); `x` is the row's input projection; `h` and `c` are the
// row's state, updated in place. The cloned ones are compiled per ISA; the
// others stay on the baseline ISA (no FMA contraction), which keeps their
// results the same on every CPU.

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

// Step functions: one recurrence step over the live rows [0, k) of a range,
// one per cell.

// Keras SimpleRNNCell: h' = act(x W + b + h U).
void SimpleRnnStep(const RnnDirection& d, const StepRows& rows, int k,
                   RangeWork& w) {
  const int u = d.units;
  RecurrentGemm(d, k, w);
  for (int r = 0; r < k; ++r) {
    if (!rows.Kept(r)) continue;
    const float* x = rows.Input(r);
    for (int j = 0; j < u; ++j) w.h(r, j) = w.gates(r, j) + x[j];
    Activate(d.activation, absl::Span<float>(&w.h(r, 0), u));
  }
}

void LstmStep(const RnnDirection& d, const StepRows& rows, int k,
              RangeWork& w) {
  RecurrentGemm(d, k, w);
  for (int r = 0; r < k; ++r) {
    if (!rows.Kept(r)) continue;
    LstmRow(d, rows.Input(r), &w.gates(r, 0), &w.h(r, 0),
            w.c + static_cast<int64_t>(r) * d.units, &w.scratch(r, 0));
  }
}

void GruResetAfterStep(const RnnDirection& d, const StepRows& rows, int k,
                       RangeWork& w) {
  RecurrentGemm(d, k, w);  // the packed kernel adds the bias itself
  for (int r = 0; r < k; ++r) {
    if (!rows.Kept(r)) continue;
    GruResetAfterRow(d, rows.Input(r), &w.gates(r, 0), &w.h(r, 0));
  }
}

// Keras GRUCell, reset_after = false: the reset gate scales h before the
// candidate's matmul, so that matmul waits for r:
// z, r = rec_act(x_zr + h U_zr); h~ = act(x_h + (r h) U_h);
// h' = z h + (1 - z) h~.
void GruResetBeforeStep(const RnnDirection& d, const StepRows& rows, int k,
                        RangeWork& w) {
  const int u = d.units;
  // z and r into the first panels of gates, h~'s h U_h after them.
  const int64_t candidate = d.recurrent_packed.padded_cols();
  PackedGemm(w.h.data(), u, k, d.recurrent_packed, w.gates.data(),
             w.gates.cols());
  for (int r = 0; r < k; ++r) {
    const float* x = rows.Input(r);
    float* g = &w.gates(r, 0);
    for (int j = 0; j < 2 * u; ++j) g[j] += x[j];
    Activate(d.recurrent_activation, Slice(g, 0, u));
    Activate(d.recurrent_activation, Slice(g, 1, u));
    for (int j = 0; j < u; ++j) w.scratch(r, j) = g[u + j] * w.h(r, j);
  }
  PackedGemm(w.scratch.data(), u, k, d.recurrent_candidate_packed,
             &w.gates(0, candidate), w.gates.cols());
  for (int r = 0; r < k; ++r) {
    if (!rows.Kept(r)) continue;
    const float* x = rows.Input(r);
    float* g = &w.gates(r, 0);
    float* hh = g + candidate;
    for (int j = 0; j < u; ++j) hh[j] += x[2 * u + j];
    Activate(d.activation, absl::Span<float>(hh, u));
    for (int j = 0; j < u; ++j) {
      w.h(r, j) = g[j] * w.h(r, j) + (1.0f - g[j]) * hh[j];
    }
  }
}

// After a step: marks the rows whose step counted as started, and writes
// the live rows' outputs (or what a skipped step outputs).
void RecordStep(const StepRows& rows, int k, int first_row, bool reverse_output,
                const PackedLayout& layout, const DirectionBuffers& io,
                const RangeWork& w) {
  if (io.started != nullptr) {
    for (int r = 0; r < k; ++r) io.started[first_row + r] |= rows.Kept(r);
  }
  if (io.output == nullptr) return;
  const int u = static_cast<int>(w.h.cols());
  for (int r = 0; r < k; ++r) {
    float* out =
        io.output + layout.row(first_row + r, rows.Time(r, reverse_output)) *
                        io.output_stride;
    if (rows.Kept(r) || io.masked_step_output == MaskedStepOutput::kState) {
      std::copy_n(&w.h(r, 0), u, out);
    } else {
      std::fill_n(out, u, 0.0f);
    }
  }
}

using StepFn = void (*)(const RnnDirection&, const StepRows&, int, RangeWork&);

// The recurrence of one row range with one cell's step, chosen once per
// call; a template so that the step inlines into the loop.
template <StepFn Step>
void Walk(const RnnDirection& d, const PackedLayout& layout, int first_row,
          int end_row, bool reverse_output, const DirectionBuffers& io) {
  RangeWork work(d, io, first_row, end_row);
  // Lengths are sorted, so the range's first row is its longest.
  for (int64_t s = 0; s < layout.length(first_row); ++s) {
    // Live rows are 0 .. k - 1 (a prefix, as alive(s) is a batch prefix).
    const int k = std::min(end_row, layout.alive(s)) - first_row;
    const StepRows rows(layout, io, d.go_backwards, first_row, s);
    Step(d, rows, k, work);
    RecordStep(rows, k, first_row, reverse_output, layout, io, work);
  }
}

}  // namespace

void RunDirection(const RnnDirection& d, const PackedLayout& layout,
                  int first_row, int end_row, bool reverse_output,
                  const DirectionBuffers& io) {
  if (first_row >= end_row) return;
  switch (d.cell) {
    case CellType::kSimpleRnn:
      return Walk<SimpleRnnStep>(d, layout, first_row, end_row, reverse_output,
                                 io);
    case CellType::kLstm:
      return Walk<LstmStep>(d, layout, first_row, end_row, reverse_output, io);
    case CellType::kGru:
      return d.reset_after
                 ? Walk<GruResetAfterStep>(d, layout, first_row, end_row,
                                           reverse_output, io)
                 : Walk<GruResetBeforeStep>(d, layout, first_row, end_row,
                                            reverse_output, io);
    case CellType::kUnspecified:
      break;
  }
  // Model::Create rejects a direction without a cell: this is a broken
  // invariant, never a request's fault.
  std::abort();
}

}  // namespace biserve
