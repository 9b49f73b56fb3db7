#include "tests/support/reference_model.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/kernels/packed_gemm_bf16.h"

namespace biserve::testing {
namespace {

using Vec = std::vector<float>;
using Seq = std::vector<Vec>;

Vec Activated(Activation a, Vec v) {
  Activate(a, absl::Span<float>(v));
  return v;
}

// How the products round their factors: not at all (Keras' float32), to
// the nearest bfloat16 (Precision::kBf16), or toward zero (a wrong bf16).
enum class Rounding { kNone, kBf16, kBf16TowardZero };

// The value a product reads for `v`.
float ProductInput(float v, Rounding rounding) {
  switch (rounding) {
    case Rounding::kBf16:
      return FromBfloat16(ToBfloat16(v));
    case Rounding::kBf16TowardZero:
      return FromBfloat16(
          static_cast<uint16_t>(std::bit_cast<uint32_t>(v) >> 16));
    default:
      return v;
  }
}

// out[j] = b[j] + sum_i x[i] * w(i, j), for columns [col, col + n), x[i]
// and w(i, j) rounded as `rounding` says (to bfloat16, their product is
// exact in float: 8 + 8 significant bits); the bias stays float32.
Vec Affine(const Vec& x, const RowMatrix& w, int col, int n, const float* b,
           Rounding rounding) {
  Vec xr(x.size());
  for (size_t i = 0; i < x.size(); ++i) xr[i] = ProductInput(x[i], rounding);
  Vec out(n);
  for (int j = 0; j < n; ++j) {
    double sum = b ? b[col + j] : 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      sum += xr[i] * ProductInput(w(i, col + j), rounding);
    }
    out[j] = static_cast<float>(sum);
  }
  return out;
}

struct DirectionOutput {
  Seq outputs;  // in processing order, as a Keras RNN returns them
  Vec h, c;
  Vec last;  // Keras' last output: zeros if every step was masked
};

// `keep[t]` false: Keras' mask skips step t (state and output carry over).
// A masked step outputs zeros (Keras) or the state h (TensorFlow.js).
// Every product rounds its factors as `rounding` says (Affine).
DirectionOutput RunCell(const RnnDirection& d, Seq xs, std::vector<bool> keep,
                        MaskedStepOutput masked, Vec h, Vec c,
                        Rounding rounding) {
  if (d.go_backwards) {
    std::reverse(xs.begin(), xs.end());
    std::reverse(keep.begin(), keep.end());
  }
  bool started = false;
  size_t step = 0;
  const int u = d.units;
  const float* bx = d.input_bias.data();
  const float* bh = d.reset_after ? d.recurrent_bias.data() : nullptr;
  DirectionOutput out;
  for (const Vec& x : xs) {
    if (!keep[step++]) {
      out.outputs.push_back(masked == MaskedStepOutput::kState ? h
                                                               : Vec(u, 0.0f));
      continue;
    }
    started = true;
    if (d.cell == CellType::kLstm) {
      auto gate = [&](int g, Activation a) {
        Vec in = Affine(x, d.kernel, g * u, u, bx, rounding);
        Vec rec = Affine(h, d.recurrent_kernel, g * u, u, nullptr, rounding);
        for (int j = 0; j < u; ++j) in[j] += rec[j];
        return Activated(a, in);
      };
      Vec i = gate(0, d.recurrent_activation);
      Vec f = gate(1, d.recurrent_activation);
      Vec cc = gate(2, d.activation);
      Vec o = gate(3, d.recurrent_activation);
      for (int j = 0; j < u; ++j) c[j] = f[j] * c[j] + i[j] * cc[j];
      Vec ac = Activated(d.activation, c);
      for (int j = 0; j < u; ++j) h[j] = o[j] * ac[j];
    } else if (d.cell == CellType::kGru) {
      Vec xz = Affine(x, d.kernel, 0, u, bx, rounding);
      Vec xr = Affine(x, d.kernel, u, u, bx, rounding);
      Vec xh = Affine(x, d.kernel, 2 * u, u, bx, rounding);
      Vec hz = Affine(h, d.recurrent_kernel, 0, u, bh, rounding);
      Vec hr = Affine(h, d.recurrent_kernel, u, u, bh, rounding);
      Vec z(u), r(u);
      for (int j = 0; j < u; ++j) {
        z[j] = xz[j] + hz[j];
        r[j] = xr[j] + hr[j];
      }
      z = Activated(d.recurrent_activation, z);
      r = Activated(d.recurrent_activation, r);
      Vec hh(u);
      if (d.reset_after) {
        Vec hhr = Affine(h, d.recurrent_kernel, 2 * u, u, bh, rounding);
        for (int j = 0; j < u; ++j) hh[j] = xh[j] + r[j] * hhr[j];
      } else {
        Vec rh(u);
        for (int j = 0; j < u; ++j) rh[j] = r[j] * h[j];
        Vec rec = Affine(rh, d.recurrent_kernel, 2 * u, u, nullptr, rounding);
        for (int j = 0; j < u; ++j) hh[j] = xh[j] + rec[j];
      }
      hh = Activated(d.activation, hh);
      for (int j = 0; j < u; ++j) h[j] = z[j] * h[j] + (1 - z[j]) * hh[j];
    } else {
      Vec in = Affine(x, d.kernel, 0, u, bx, rounding);
      Vec rec = Affine(h, d.recurrent_kernel, 0, u, nullptr, rounding);
      for (int j = 0; j < u; ++j) in[j] += rec[j];
      h = Activated(d.activation, in);
    }
    out.outputs.push_back(h);
  }
  out.h = h;
  out.c = c;
  out.last = started || masked == MaskedStepOutput::kState ? h : Vec(u, 0.0f);
  return out;
}

Vec Merge(MergeMode mode, const Vec& a, const Vec& b) {
  Vec out;
  if (mode == MergeMode::kConcat) {
    out = a;
    out.insert(out.end(), b.begin(), b.end());
    return out;
  }
  out.resize(a.size());
  for (size_t j = 0; j < a.size(); ++j) {
    switch (mode) {
      case MergeMode::kSum:
        out[j] = a[j] + b[j];
        break;
      case MergeMode::kMul:
        out[j] = a[j] * b[j];
        break;
      default:  // kAve
        out[j] = (a[j] + b[j]) / 2;
        break;
    }
  }
  return out;
}

Tensor ToTensor(const Seq& rows, bool sequences) {
  Tensor t;
  if (!sequences) {
    t.shape = {static_cast<int64_t>(rows.back().size())};
    t.values = rows.back();
    return t;
  }
  t.shape = {static_cast<int64_t>(rows.size()),
             static_cast<int64_t>(rows.front().size())};
  for (const Vec& r : rows) t.values.insert(t.values.end(), r.begin(), r.end());
  return t;
}

Vec FromSpan(absl::Span<const float> s) { return Vec(s.begin(), s.end()); }

// Keras' BatchNormalization at inference, in double:
// (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta.
Vec BatchNormalized(const BatchNormalizationLayer& bn, const Vec& x) {
  Vec y(x.size());
  for (size_t j = 0; j < x.size(); ++j) {
    double v = (static_cast<double>(x[j]) - bn.moving_mean[j]) /
               std::sqrt(static_cast<double>(bn.moving_variance[j]) +
                         static_cast<double>(bn.epsilon));
    if (bn.gamma.size() > 0) v *= bn.gamma[j];
    if (bn.beta.size() > 0) v += bn.beta[j];
    y[j] = static_cast<float>(v);
  }
  return y;
}

// Keras' LayerNormalization over x's features, in double: the population
// variance (mean of squared differences), then as BatchNormalized.
Vec LayerNormalized(const LayerNormalizationLayer& ln, const Vec& x) {
  const double n = static_cast<double>(x.size());
  double mean = 0.0;
  for (float v : x) mean += v;
  mean /= n;
  double variance = 0.0;
  for (float v : x) variance += (v - mean) * (v - mean);
  variance /= n;
  const double inv =
      1.0 / std::sqrt(variance + static_cast<double>(ln.epsilon));
  Vec y(x.size());
  for (size_t j = 0; j < x.size(); ++j) {
    double v = (x[j] - mean) * inv;
    if (ln.gamma.size() > 0) v *= ln.gamma[j];
    if (ln.beta.size() > 0) v += ln.beta[j];
    y[j] = static_cast<float>(v);
  }
  return y;
}

// GlobalMaxPooling1D over every step (Keras ignores the mask), or
// GlobalAveragePooling1D over the steps `keep` marks (Keras' masked mean:
// NaN when none is).
Vec Pooled(PoolingType pooling, const Seq& x, const std::vector<bool>& keep) {
  const size_t width = x.front().size();
  Vec out(width);
  for (size_t j = 0; j < width; ++j) {
    if (pooling == PoolingType::kMax) {
      float m = x.front()[j];
      for (const Vec& row : x) m = std::max(m, row[j]);
      out[j] = m;
      continue;
    }
    double sum = 0.0;
    int count = 0;
    for (size_t t = 0; t < x.size(); ++t) {
      if (!keep[t]) continue;
      sum += x[t][j];
      ++count;
    }
    out[j] = static_cast<float>(sum / count);
  }
  return out;
}

// Applies a layer other than Bidirectional to x, written from Keras'
// equations (Dense's product rounding as Affine does). Returns false for a
// Bidirectional layer.
bool ApplyOtherLayer(const StackLayer& layer, const std::vector<bool>& keep,
                     Seq& x, bool& sequences, Rounding rounding) {
  if (const auto* dense = std::get_if<DenseLayer>(&layer)) {
    for (Vec& row : x) {
      row = Activated(dense->activation,
                      Affine(row, dense->kernel, 0, dense->units(),
                             dense->bias.data(), rounding));
    }
  } else if (const auto* a = std::get_if<ActivationLayer>(&layer)) {
    for (Vec& row : x) row = Activated(a->activation, row);
  } else if (const auto* bn = std::get_if<BatchNormalizationLayer>(&layer)) {
    for (Vec& row : x) row = BatchNormalized(*bn, row);
  } else if (const auto* ln = std::get_if<LayerNormalizationLayer>(&layer)) {
    for (Vec& row : x) row = LayerNormalized(*ln, row);
  } else if (const auto* pool = std::get_if<GlobalPoolingLayer>(&layer)) {
    x = {Pooled(pool->pooling, x, keep)};
    sequences = false;
  } else {
    return false;
  }
  return true;
}

}  // namespace

SequenceResult ReferenceEvaluate(const Model& model, const SequenceInput& input,
                                 const EvalOptions& options) {
  return ReferenceEvaluate(model, input, options, ReferenceOptions());
}

SequenceResult ReferenceEvaluate(const Model& model, const SequenceInput& input,
                                 const EvalOptions& options,
                                 const ReferenceOptions& reference) {
  const Rounding rounding = !reference.bf16_products ? Rounding::kNone
                            : reference.bf16_truncate
                                ? Rounding::kBf16TowardZero
                                : Rounding::kBf16;
  Seq x;
  std::vector<bool> keep;
  for (int64_t t = 0; t < input.length; ++t) {
    if (model.embedding()) {
      const RowMatrix& e = model.embedding()->embeddings;
      const int id = input.token_ids[t];
      x.emplace_back(&e(id, 0), &e(id, 0) + e.cols());
      keep.push_back(!model.embedding()->mask_zero || id != 0);
    } else {
      const int n = model.input_dim();
      x.push_back(FromSpan(input.features.subspan(t * n, n)));
      bool masked = model.mask_value().has_value();
      for (float v : x.back()) masked &= v == model.mask_value().value_or(0);
      if (masked) std::fill(x.back().begin(), x.back().end(), 0.0f);
      keep.push_back(!masked);
    }
  }
  bool sequences = true;
  SequenceResult result;
  for (int index = 0; index < static_cast<int>(model.layers().size());
       ++index) {
    const StackLayer& layer = model.layers()[index];
    if (ApplyOtherLayer(layer, keep, x, sequences, rounding)) continue;
    const auto& bidi = std::get<BidirectionalLayer>(layer);
    std::vector<Vec> init;
    if (index == model.first_bidirectional()) {
      for (const auto& s : input.initial_state) init.push_back(FromSpan(s));
    }
    auto state = [&](size_t i, int units) {
      return i < init.size() ? init[i] : Vec(units, 0.0f);
    };
    const int fw_states = bidi.forward.state_count();
    DirectionOutput fw = RunCell(bidi.forward, x, keep, bidi.masked_step_output,
                                 state(0, bidi.forward.units),
                                 state(1, bidi.forward.units), rounding);
    DirectionOutput bw =
        RunCell(bidi.backward, x, keep, bidi.masked_step_output,
                state(fw_states, bidi.backward.units),
                state(fw_states + 1, bidi.backward.units), rounding);
    if (bidi.return_sequences) {
      std::reverse(bw.outputs.begin(), bw.outputs.end());
    } else {
      fw.outputs = {fw.last};
      bw.outputs = {bw.last};
    }
    if (bidi.merge_mode != MergeMode::kNone) {
      Seq merged;
      for (size_t t = 0; t < fw.outputs.size(); ++t) {
        merged.push_back(Merge(bidi.merge_mode, fw.outputs[t], bw.outputs[t]));
      }
      x = merged;
    }
    sequences = bidi.return_sequences;
    if (index == model.last_bidirectional() &&
        (options.directions || bidi.merge_mode == MergeMode::kNone)) {
      result.forward = ToTensor(fw.outputs, sequences);
      result.backward = ToTensor(bw.outputs, sequences);
    }
    if (options.states) {
      std::vector<Tensor>& states = result.states.emplace_back();
      auto add = [&](const Vec& v) {
        states.push_back(Tensor{{static_cast<int64_t>(v.size())}, v});
      };
      add(fw.h);
      if (bidi.forward.cell == CellType::kLstm) add(fw.c);
      add(bw.h);
      if (bidi.backward.cell == CellType::kLstm) add(bw.c);
    }
  }
  if (options.output && model.output_size() > 0) {
    result.output = ToTensor(x, sequences);
  }
  return result;
}

}  // namespace biserve::testing
