'use strict';
// Shared pieces for generate_tfjs_models.js.
//
// The PRNG, the float formatting, the activations, the GRU reset_after=True
// cell, the float64 Keras-equations RNN and the GoldenCase JSON writer are
// copies of the same code in generate.js (which is left untouched and does not
// use this module). Added here: masking (Embedding mask_zero, Masking) in the
// float64 reference, in two semantics (tfjs' and Keras'), a generic reference
// pipeline for Embedding / Masking / Bidirectional / Dense stacks, and a
// writer that reproduces Python's json.dumps() byte for byte.

const tf = require('@tensorflow/tfjs');

// ---------------------------------------------------------------------------
// Deterministic randomness and float32 helpers (as in generate.js).

function hashString(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h;
}

// mulberry32
function makeRng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    int: (n) => Math.floor(next() * n),
  };
}

function randomF32(rng, n, limit) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(rng.uniform(-limit, limit));
  return out;
}

// Shortest decimal that reads back (as a double, then rounded to float, as
// protobuf's JSON parser does) to the same float32.
function f32String(v) {
  if (!Number.isFinite(v)) throw new Error('non-finite value ' + v);
  if (v === 0) return '0';
  for (let p = 1; p <= 9; p++) {
    const s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) return String(Number(s));
  }
  throw new Error('cannot format ' + v);
}

// ---------------------------------------------------------------------------
// Activations (as in generate.js).

const KERAS_ACTIVATIONS = [
  'linear', 'tanh', 'sigmoid', 'hard_sigmoid', 'relu', 'elu', 'selu', 'softsign',
  'softplus', 'swish', 'softmax',
];

function tfjsActivation(name) {
  if (!KERAS_ACTIVATIONS.includes(name)) throw new Error('unknown activation ' + name);
  return name === 'hard_sigmoid' ? 'hardSigmoid' : name;
}

const SELU_ALPHA = 1.6732632423543772848170429916717;
const SELU_SCALE = 1.0507009873554804934193349852946;

const act64 = {
  linear: (x) => x,
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  hard_sigmoid: (x) => Math.min(1, Math.max(0, 0.2 * x + 0.5)),
  relu: (x) => Math.max(0, x),
  elu: (x) => (x > 0 ? x : Math.expm1(x)),
  selu: (x) => SELU_SCALE * (x > 0 ? x : SELU_ALPHA * Math.expm1(x)),
  softsign: (x) => x / (1 + Math.abs(x)),
  softplus: (x) => (x > 30 ? x : Math.log1p(Math.exp(x))),
  swish: (x) => x / (1 + Math.exp(-x)),
};

// ---------------------------------------------------------------------------
// Keras' GRU cell with reset_after=True, which tfjs 4.22 does not have (as in
// generate.js). Weights as in Keras: kernel [in, 3u], recurrent_kernel
// [u, 3u], bias [2, 3u] (row 0 input bias, row 1 recurrent bias); gates z, r, h.

class KerasGRUCell extends tf.layers.Layer {
  constructor(args) {
    super(args);
    this.units = args.units;
    this.activationName = args.activation;
    this.recurrentActivationName = args.recurrentActivation;
    this.useBias = args.useBias;
    this.activationLayer = tf.layers.activation({ activation: args.activation });
    this.recurrentActivationLayer = tf.layers.activation({ activation: args.recurrentActivation });
    this.stateSize = this.units;
  }

  build(inputShape) {
    const shape = Array.isArray(inputShape[0]) ? inputShape[0] : inputShape;
    const inputDim = shape[shape.length - 1];
    const zeros = tf.initializers.zeros();
    this.kernel = this.addWeight('kernel', [inputDim, 3 * this.units], 'float32', zeros);
    this.recurrentKernel = this.addWeight('recurrent_kernel', [this.units, 3 * this.units], 'float32', zeros);
    this.bias = this.useBias ? this.addWeight('bias', [2, 3 * this.units], 'float32', zeros) : null;
    this.built = true;
  }

  call(inputs) {
    return tf.tidy(() => {
      const x = inputs[0];
      const h = inputs[1];
      let matrixX = tf.matMul(x, this.kernel.read());
      let inner = tf.matMul(h, this.recurrentKernel.read());
      if (this.useBias) {
        const [bIn, bRec] = tf.unstack(this.bias.read(), 0);
        matrixX = tf.add(matrixX, bIn);
        inner = tf.add(inner, bRec);
      }
      const [xZ, xR, xH] = tf.split(matrixX, 3, -1);
      const [iZ, iR, iH] = tf.split(inner, 3, -1);
      const z = this.recurrentActivationLayer.apply(tf.add(xZ, iZ));
      const r = this.recurrentActivationLayer.apply(tf.add(xR, iR));
      const hh = this.activationLayer.apply(tf.add(xH, tf.mul(r, iH)));
      const hNew = tf.add(tf.mul(z, h), tf.mul(tf.sub(1, z), hh));
      return [hNew, hNew];
    });
  }

  getConfig() {
    return Object.assign({}, super.getConfig(), {
      units: this.units,
      activation: this.activationName,
      recurrentActivation: this.recurrentActivationName,
      useBias: this.useBias,
    });
  }

  static get className() {
    return 'BiserveKerasGRUCell';
  }
}
tf.serialization.registerClass(KerasGRUCell);

class KerasGRU extends tf.RNN {
  constructor(args) {
    args.cell = new KerasGRUCell(args);
    super(args);
  }

  static fromConfig(cls, config) {
    return new cls(config);
  }

  static get className() {
    return 'BiserveKerasGRU';
  }
}
tf.serialization.registerClass(KerasGRU);

// ---------------------------------------------------------------------------
// Float64 Keras equations with masking.

const GATES = { simple_rnn: 1, lstm: 4, gru: 3 };

// One Keras recurrent layer in float64. `valid` (optional) says per TIME step
// whether the step is unmasked. A masked step leaves the states unchanged and
// outputs the current h (what tfjs' rnn() does: states[0] at that step, i.e.
// the last unmasked output, or the initial h before any). Returns the per-step
// outputs in PROCESSING order, which processing steps were valid, the last
// output and the final states.
function runRnn64(layer, x, T, inSize, init, valid) {
  const H = layer.units;
  const G = GATES[layer.cell];
  const K = layer.weights.kernel;
  const RK = layer.weights.recurrent_kernel;
  const B = layer.weights.bias;
  const act = act64[layer.activation];
  const ract = layer.recurrent_activation ? act64[layer.recurrent_activation] : null;
  let h = init ? Float64Array.from(init[0]) : new Float64Array(H);
  let c = layer.cell === 'lstm' ? (init ? Float64Array.from(init[1]) : new Float64Array(H)) : null;
  const seq = new Float64Array(T * H);
  const procValid = new Array(T).fill(true);
  const mx = new Float64Array(G * H);
  const mh = new Float64Array(G * H);
  const resetAfter = layer.cell === 'gru' && layer.reset_after;
  for (let s = 0; s < T; s++) {
    const t = layer.go_backwards ? T - 1 - s : s;
    if (valid && !valid[t]) {
      procValid[s] = false;
      seq.set(h, s * H);
      continue;
    }
    mx.fill(0);
    mh.fill(0);
    for (let k = 0; k < inSize; k++) {
      const xv = x[t * inSize + k];
      for (let j = 0; j < G * H; j++) mx[j] += xv * K[k * G * H + j];
    }
    if (B) for (let j = 0; j < G * H; j++) mx[j] += B[j];
    const recCols = layer.cell === 'gru' && !resetAfter ? 2 * H : G * H;
    for (let k = 0; k < H; k++) {
      for (let j = 0; j < recCols; j++) mh[j] += h[k] * RK[k * G * H + j];
    }
    if (resetAfter && B) for (let j = 0; j < G * H; j++) mh[j] += B[G * H + j];
    const hNew = new Float64Array(H);
    if (layer.cell === 'simple_rnn') {
      for (let u = 0; u < H; u++) hNew[u] = act(mx[u] + mh[u]);
    } else if (layer.cell === 'lstm') {
      const cNew = new Float64Array(H);
      for (let u = 0; u < H; u++) {
        const ig = ract(mx[u] + mh[u]);
        const fg = ract(mx[H + u] + mh[H + u]);
        const cc = act(mx[2 * H + u] + mh[2 * H + u]);
        const og = ract(mx[3 * H + u] + mh[3 * H + u]);
        cNew[u] = fg * c[u] + ig * cc;
        hNew[u] = og * act(cNew[u]);
      }
      c = cNew;
    } else {
      const z = new Float64Array(H);
      const r = new Float64Array(H);
      for (let u = 0; u < H; u++) {
        z[u] = ract(mx[u] + mh[u]);
        r[u] = ract(mx[H + u] + mh[H + u]);
      }
      for (let u = 0; u < H; u++) {
        let pre;
        if (resetAfter) {
          pre = mx[2 * H + u] + r[u] * mh[2 * H + u];
        } else {
          pre = mx[2 * H + u];
          for (let k = 0; k < H; k++) pre += r[k] * h[k] * RK[k * G * H + 2 * H + u];
        }
        hNew[u] = z[u] * h[u] + (1 - z[u]) * act(pre);
      }
    }
    h = hNew;
    seq.set(h, s * H);
  }
  const states = [h];
  if (c) states.push(c);
  return { seq, procValid, last: h, states };
}

async function runner64(fwd, bwd, x, T, inSize, initialState, valid) {
  const nf = fwd.cell === 'lstm' ? 2 : 1;
  return [
    runRnn64(fwd, x, T, inSize, initialState ? initialState.slice(0, nf) : null, valid),
    runRnn64(bwd, x, T, inSize, initialState ? initialState.slice(nf) : null, valid),
  ];
}

// Wraps a runner that knows no masks (ONNX Runtime): runs it on the unmasked
// steps only, then puts the masked steps back with tfjs' semantics (output =
// the current h). Independent of runRnn64's per-step masking.
function compactingRunner(inner) {
  return async (fwd, bwd, x, T, inSize, initialState, valid) => {
    if (!valid || valid.every((v) => v)) {
      const r = await inner(fwd, bwd, x, T, inSize, initialState);
      return r.map((d) => Object.assign({}, d, { procValid: new Array(T).fill(true) }));
    }
    const keep = [];
    for (let t = 0; t < T; t++) if (valid[t]) keep.push(t);
    if (!keep.length) throw new Error('compactingRunner: all steps masked');
    const xc = new Float64Array(keep.length * inSize);
    keep.forEach((t, i) => xc.set(x.subarray(t * inSize, (t + 1) * inSize), i * inSize));
    const r = await inner(fwd, bwd, xc, keep.length, inSize, initialState);
    const nf = fwd.cell === 'lstm' ? 2 : 1;
    return [fwd, bwd].map((layer, d) => {
      const H = layer.units;
      const init = initialState ? initialState.slice(d ? nf : 0, d ? undefined : nf) : null;
      let h = init ? Float64Array.from(init[0]) : new Float64Array(H);
      const seq = new Float64Array(T * H);
      const procValid = new Array(T).fill(true);
      let k = 0;
      for (let s = 0; s < T; s++) {
        const t = layer.go_backwards ? T - 1 - s : s;
        if (valid[t]) {
          h = Float64Array.from(r[d].seq.subarray(k * H, (k + 1) * H));
          k++;
        } else {
          procValid[s] = false;
        }
        seq.set(h, s * H);
      }
      return { seq, procValid, last: Float64Array.from(r[d].last), states: r[d].states };
    });
  };
}

function flipTime(a, T, H) {
  const out = new Float64Array(T * H);
  for (let t = 0; t < T; t++) out.set(a.subarray((T - 1 - t) * H, (T - t) * H), t * H);
  return out;
}

function applyDense64(l, x, rows) {
  const out = new Float64Array(rows * l.units);
  for (let r = 0; r < rows; r++) {
    const o = out.subarray(r * l.units, (r + 1) * l.units);
    for (let u = 0; u < l.units; u++) {
      let s = l.bias ? l.bias[u] : 0;
      for (let k = 0; k < l.inputSize; k++) s += x[r * l.inputSize + k] * l.kernel[k * l.units + u];
      o[u] = s;
    }
    if (l.activation === 'softmax') {
      const m = Math.max(...o);
      let sum = 0;
      for (let u = 0; u < l.units; u++) { o[u] = Math.exp(o[u] - m); sum += o[u]; }
      for (let u = 0; u < l.units; u++) o[u] /= sum;
    } else {
      const f = act64[l.activation];
      for (let u = 0; u < l.units; u++) o[u] = f(o[u]);
    }
  }
  return out;
}

// Evaluates a normalized model (see generate_tfjs_models.js) on one sequence
// with a runner (runner64 or a compactingRunner around ONNX Runtime).
// maskMode 'tfjs': a masked step outputs the carried h (tfjs' rnn()).
// maskMode 'keras': Keras 2's Bidirectional forces zero_output_for_mask =
// return_sequences on both directions, so with return_sequences a masked
// step outputs 0 in both directions; final states and the last output are
// the carried ones, as in tfjs.
async function evalReference(model, seq, runner, maskMode) {
  const T = seq.length;
  let x = null;
  let inSize = model.input_dim;
  let seqMode = true;
  let valid = null;
  const result = { output: null, forward: null, backward: null, states: [] };
  let firstBi = true;
  for (const l of model.layers) {
    const rows = seqMode ? T : 1;
    if (l.kind === 'embedding') {
      x = new Float64Array(T * l.dim);
      seq.token_ids.forEach((id, t) => x.set(l.embeddings.subarray(id * l.dim, (id + 1) * l.dim), t * l.dim));
      inSize = l.dim;
      if (l.mask_zero) valid = seq.token_ids.map((id) => id !== 0);
      continue;
    }
    if (!x) x = Float64Array.from(seq.features);
    if (l.kind === 'masking') {
      valid = [];
      for (let t = 0; t < T; t++) {
        let any = false;
        for (let k = 0; k < inSize; k++) if (x[t * inSize + k] !== l.mask_value) any = true;
        valid.push(any);
        if (!any) x.fill(0, t * inSize, (t + 1) * inSize);
      }
      continue;
    }
    if (l.kind === 'dense') {
      x = applyDense64(l, x, rows);
      inSize = l.units;
      continue;
    }
    const init = firstBi && seq.initial_state ? seq.initial_state : null;
    firstBi = false;
    const f = l.forward;
    const b = l.backward;
    const [rf, rb] = await runner(f, b, x, T, inSize, init, valid);
    const rs = f.return_sequences;
    const zeroMasked = (r, H) => {
      const out = Float64Array.from(r.seq);
      if (maskMode === 'keras') {
        r.procValid.forEach((ok, s) => { if (!ok) out.fill(0, s * H, (s + 1) * H); });
      }
      return out;
    };
    const yf = rs ? zeroMasked(rf, f.units) : Float64Array.from(rf.last);
    const yb = rs ? flipTime(zeroMasked(rb, b.units), T, b.units) : Float64Array.from(rb.last);
    const outRows = rs ? T : 1;
    let merged = null;
    if (l.merge_mode === 'concat') {
      const D = f.units + b.units;
      merged = new Float64Array(outRows * D);
      for (let r = 0; r < outRows; r++) {
        merged.set(yf.subarray(r * f.units, (r + 1) * f.units), r * D);
        merged.set(yb.subarray(r * b.units, (r + 1) * b.units), r * D + f.units);
      }
      inSize = D;
    } else if (l.merge_mode !== 'none') {
      const op = { sum: (a, c) => a + c, mul: (a, c) => a * c, ave: (a, c) => 0.5 * (a + c) }[l.merge_mode];
      merged = yf.map((v, i) => op(v, yb[i]));
      inSize = f.units;
    }
    const shape = (D) => (rs ? [T, D] : [D]);
    result.states = f.return_state ?
      rf.states.concat(rb.states).map((s) => ({ shape: [s.length], values: Float64Array.from(s) })) : [];
    if (merged) {
      result.forward = null;
      result.backward = null;
    } else {
      result.forward = { shape: shape(f.units), values: yf };
      result.backward = { shape: shape(b.units), values: yb };
    }
    x = merged;
    seqMode = rs;
    if (!rs) valid = null;
  }
  if (x) result.output = { shape: seqMode ? [T, inSize] : [inSize], values: x };
  return result;
}

function maxDiff(a, b, what) {
  let m = 0;
  const cmp = (ta, tb, name) => {
    if (!ta && !tb) return;
    if (!ta || !tb) throw new Error(`${what}: ${name} present in only one result`);
    if (JSON.stringify(ta.shape) !== JSON.stringify(tb.shape)) {
      throw new Error(`${what}: ${name} shape ${ta.shape} vs ${tb.shape}`);
    }
    if (ta.values.length !== tb.values.length) throw new Error(`${what}: ${name} size differs`);
    for (let i = 0; i < ta.values.length; i++) {
      const d = Math.abs(ta.values[i] - tb.values[i]);
      if (!(d <= m)) m = d;  // NaN propagates as a failure below
    }
  };
  for (const k of ['output', 'forward', 'backward']) cmp(a[k], b[k], k);
  if (a.states.length !== b.states.length) throw new Error(`${what}: state count differs`);
  a.states.forEach((s, i) => cmp(s, b.states[i], 'state ' + i));
  if (Number.isNaN(m)) throw new Error(`${what}: NaN difference`);
  return m;
}

// ---------------------------------------------------------------------------
// GoldenCase JSON (as in generate.js).

function tensorJson(shape, values) {
  return { shape: shape.slice(), values: Float32Array.from(values) };
}

// Pretty JSON with number arrays on one line; Float32Array values are written
// as the shortest decimal that round-trips to the same float32.
function stringify(value, indent) {
  const pad = ' '.repeat(indent);
  const inner = ' '.repeat(indent + 1);
  if (value instanceof Float32Array) return '[' + Array.from(value, f32String).join(',') + ']';
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'number')) {
      return '[' + value.map((v) => {
        if (!Number.isFinite(v)) throw new Error('non-finite number');
        return String(v);
      }).join(',') + ']';
    }
    if (!value.length) return '[]';
    return '[\n' + value.map((v) => inner + stringify(v, indent + 1)).join(',\n') + '\n' + pad + ']';
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (!keys.length) return '{}';
    return '{\n' + keys.map((k) => inner + JSON.stringify(k) + ': ' + stringify(value[k], indent + 1)).join(',\n') +
      '\n' + pad + '}';
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error('non-finite number');
    return String(value);
  }
  return JSON.stringify(value);
}

function plain(value) {
  return JSON.parse(stringify(value, 0));
}

// ---------------------------------------------------------------------------
// Python's json.dumps() with its default separators (', ' and ': '),
// ensure_ascii=True and no sorting, as tensorflowjs_converter writes model.json
// (json.dump(model_json, f)). JS numbers are Python ints; a Python float is
// written as PyFloat so that it gets Python's repr (0.0, 1e-07, ...).

class PyFloat {
  constructor(v) {
    if (!Number.isFinite(v)) throw new Error('PyFloat needs a finite number');
    this.v = v;
  }
}

function pyFloatRepr(v) {
  if (v === 0) return Object.is(v, -0) ? '-0.0' : '0.0';
  const [mant, expStr] = v.toExponential().split('e');  // shortest round-trip digits
  const exp = Number(expStr);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let s;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? digits[0] + '.' + digits.slice(1) : digits;
    s = m + 'e' + (exp < 0 ? '-' : '+') + String(Math.abs(exp)).padStart(2, '0');
  } else if (exp < 0) {
    s = '0.' + '0'.repeat(-exp - 1) + digits;
  } else if (digits.length <= exp + 1) {
    s = digits + '0'.repeat(exp + 1 - digits.length) + '.0';
  } else {
    s = digits.slice(0, exp + 1) + '.' + digits.slice(exp + 1);
  }
  return (neg ? '-' : '') + s;
}

function pyString(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c > 0x7e) {
      if (c > 0xffff) throw new Error('non-BMP character in ' + s);
      out += '\\u' + c.toString(16).padStart(4, '0');
    } else out += ch;
  }
  return out + '"';
}

function pyJsonDumps(value) {
  if (value === null) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (value instanceof PyFloat) return pyFloatRepr(value.v);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error('non-integer JS number ' + value + ': use PyFloat');
    return String(value);
  }
  if (typeof value === 'string') return pyString(value);
  if (Array.isArray(value)) return '[' + value.map(pyJsonDumps).join(', ') + ']';
  if (typeof value === 'object') {
    return '{' + Object.keys(value).map((k) => pyString(k) + ': ' + pyJsonDumps(value[k])).join(', ') + '}';
  }
  throw new Error('cannot write ' + typeof value);
}

module.exports = {
  hashString, makeRng, randomF32, f32String,
  KERAS_ACTIVATIONS, tfjsActivation, act64,
  KerasGRU, GATES,
  runRnn64, runner64, compactingRunner, evalReference, maxDiff, flipTime,
  tensorJson, stringify, plain,
  PyFloat, pyFloatRepr, pyJsonDumps,
};
