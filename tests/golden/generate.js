'use strict';
// Golden-test fixture generator for biserve.
//
//   cd tests/golden && npm ci && node generate.js
//
// Writes fixtures/<case>.json: one biserve.test.GoldenCase (golden_case.proto)
// in proto3 JSON each. Every sequence of a case is evaluated alone (batch of
// one, its own length) with TensorFlow.js Layers on the pure-JS CPU backend;
// the C++ test evaluates the sequences together as a ragged batch.
//
// What tfjs lacks is added here from Keras' definitions: the GRU cell with
// reset_after=True (KerasGRUCell below) and Bidirectional's explicit
// backward_layer (composeBidirectional below). Every case is cross-checked
// against a float64 re-implementation of the Keras equations, and every case
// whose activations ONNX's RNN operators have is also cross-checked against
// ONNX Runtime (onnx_reference.js). The generator throws if any check differs
// by more than TOLERANCE.
//
// Deterministic: weights, inputs and states come from a seeded PRNG (one
// stream per case, seeded from the case name); no Math.random.

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const onnx = require('./onnx_reference');
const protoCheck = require('./proto_check');

const TOLERANCE = 1e-5;
const FIXTURE_DIR = path.join(__dirname, 'fixtures');

// ---------------------------------------------------------------------------
// Deterministic randomness and float32 helpers.

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
// Activations.

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
// Keras' GRU cell with reset_after=True, which tfjs 4.22 does not have.
// Weights as in Keras: kernel [in, 3u], recurrent_kernel [u, 3u], bias [2, 3u]
// (row 0 input bias, row 1 recurrent bias); gates z, r, h.
//   inner = h·U + b_rec
//   z = rec_act(x·W_z + b_in_z + inner_z)
//   r = rec_act(x·W_r + b_in_r + inner_r)
//   hh = act(x·W_h + b_in_h + r * inner_h)
//   h' = z * h + (1 - z) * hh

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

// The RNN layer around KerasGRUCell, built like tfjs' own GRU layer. tfjs'
// Bidirectional clones its layer through getConfig()/fromConfig(); a plain
// tf.layers.rnn({cell}) does not survive that (RNN.fromConfig replaces the
// serialized cell in the shared config with the cell object, so building the
// backward copy fails), hence this registered subclass.
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
// Case specification -> normalized model with weights.

const GATES = { simple_rnn: 1, lstm: 4, gru: 3 };

function rnnDefaults(spec) {
  const layer = Object.assign({
    activation: 'tanh',
    recurrent_activation: 'sigmoid',
    use_bias: true,
    go_backwards: false,
    return_sequences: false,
    return_state: false,
  }, spec);
  if (layer.cell === 'gru' && layer.reset_after === undefined) layer.reset_after = true;
  if (layer.cell !== 'gru') delete layer.reset_after;
  if (layer.cell === 'simple_rnn') delete layer.recurrent_activation;
  if (!GATES[layer.cell]) throw new Error('bad cell ' + layer.cell);
  return layer;
}

// Weight ranges: uniform +-scale/sqrt(fan_in), biases +-bias. Large enough
// that the gates and activations are well away from linear, small enough to
// stay out of saturation (see README.md for the measured output ranges).
const DEFAULT_SCALE = { kernel: 2, recurrent: 2, bias: 0.5, dense: 4 };

function makeRnnWeights(rng, layer, inputSize, scale) {
  const G = GATES[layer.cell];
  const H = layer.units;
  const w = {
    kernel: randomF32(rng, inputSize * G * H, scale.kernel / Math.sqrt(inputSize)),
    recurrent_kernel: randomF32(rng, H * G * H, scale.recurrent / Math.sqrt(H)),
    bias: null,
  };
  if (layer.use_bias) {
    const rows = layer.cell === 'gru' && layer.reset_after ? 2 : 1;
    w.bias = randomF32(rng, rows * G * H, scale.bias);
  }
  return w;
}

// Builds the normalized model: plain objects, Keras snake_case options,
// Float32Array weights.
function buildModel(spec, rng) {
  const model = { name: spec.name, input_dim: spec.input_dim, layers: [] };
  const scale = Object.assign({}, DEFAULT_SCALE, spec.scale);
  let featureSize = spec.input_dim;
  let sequenceOut = true;
  let biCount = 0;
  let denseCount = 0;
  spec.layers.forEach((ls, index) => {
    if (ls.type === 'embedding') {
      if (index !== 0 || spec.input_dim !== 0) throw new Error('embedding must come first with input_dim 0');
      model.layers.push({
        kind: 'embedding', name: 'embedding', vocab: ls.vocab, dim: ls.dim,
        embeddings: randomF32(rng, ls.vocab * ls.dim, 1),
      });
      featureSize = ls.dim;
    } else if (ls.type === 'bidirectional') {
      if (!sequenceOut) throw new Error('a Bidirectional layer needs sequences from the layer before');
      const fwd = rnnDefaults(ls.forward);
      fwd.name = fwd.name || fwd.cell + (biCount ? '_' + biCount : '');
      fwd.inputSize = featureSize;
      fwd.weights = makeRnnWeights(rng, fwd, featureSize, scale);
      let bwd;
      const explicit = !!ls.backward;
      if (explicit) {
        bwd = rnnDefaults(Object.assign({}, ls.backward, {
          return_sequences: fwd.return_sequences,
          return_state: fwd.return_state,
          go_backwards: !fwd.go_backwards,
        }));
        bwd.name = bwd.name || 'backward_' + bwd.cell + (biCount ? '_' + biCount : '');
      } else {
        bwd = Object.assign({}, fwd, { go_backwards: !fwd.go_backwards });
      }
      bwd.inputSize = featureSize;
      bwd.weights = makeRnnWeights(rng, bwd, featureSize, scale);
      const merge = ls.merge_mode || 'concat';
      model.layers.push({
        kind: 'bidirectional',
        name: 'bidirectional' + (biCount ? '_' + biCount : ''),
        forward: fwd, backward: bwd, explicitBackward: explicit, merge_mode: merge,
      });
      biCount++;
      if (merge === 'none' && index !== spec.layers.length - 1) throw new Error('merge none must be last');
      featureSize = merge === 'concat' ? fwd.units + bwd.units : fwd.units;
      if (merge !== 'concat' && fwd.units !== bwd.units) throw new Error('merge needs equal units');
      sequenceOut = fwd.return_sequences;
    } else if (ls.type === 'dense') {
      const d = {
        kind: 'dense', name: 'dense' + (denseCount ? '_' + denseCount : ''), units: ls.units,
        activation: ls.activation || 'linear', use_bias: ls.use_bias !== false, inputSize: featureSize,
      };
      d.kernel = randomF32(rng, featureSize * ls.units, scale.dense / Math.sqrt(featureSize));
      d.bias = d.use_bias ? randomF32(rng, ls.units, scale.bias) : null;
      model.layers.push(d);
      denseCount++;
      featureSize = ls.units;
    } else {
      throw new Error('bad layer type ' + ls.type);
    }
  });
  model.sequenceOut = sequenceOut;
  return model;
}

function makeSequences(spec, model, rng) {
  const first = model.layers[0];
  const firstBi = model.layers.find((l) => l.kind === 'bidirectional');
  return spec.lengths.map((T) => {
    const s = { length: T };
    if (first.kind === 'embedding') {
      s.token_ids = Array.from({ length: T }, () => rng.int(first.vocab));
    } else {
      s.features = randomF32(rng, T * spec.input_dim, 1);
    }
    if (spec.initial_state) {
      s.initial_state = [];
      for (const dir of [firstBi.forward, firstBi.backward]) {
        s.initial_state.push(randomF32(rng, dir.units, 0.5));
        if (dir.cell === 'lstm') s.initial_state.push(randomF32(rng, dir.units, 1));
      }
    }
    return s;
  });
}

// ---------------------------------------------------------------------------
// TensorFlow.js evaluation.

function tfjsRnnLayer(layer) {
  const common = {
    units: layer.units,
    activation: tfjsActivation(layer.activation),
    useBias: layer.use_bias,
    goBackwards: layer.go_backwards,
    returnSequences: layer.return_sequences,
    returnState: layer.return_state,
    kernelInitializer: 'zeros',
    recurrentInitializer: 'zeros',
    biasInitializer: 'zeros',
  };
  if (layer.cell === 'simple_rnn') return tf.layers.simpleRNN(common);
  // tfjs defaults recurrentActivation to hardSigmoid (Keras: sigmoid), so it
  // is always passed explicitly.
  common.recurrentActivation = tfjsActivation(layer.recurrent_activation);
  if (layer.cell === 'lstm') return tf.layers.lstm(Object.assign(common, { unitForgetBias: false }));
  if (!layer.reset_after) return tf.layers.gru(common);
  return new KerasGRU({
    units: layer.units,
    activation: common.activation,
    recurrentActivation: common.recurrentActivation,
    useBias: layer.use_bias,
    goBackwards: layer.go_backwards,
    returnSequences: layer.return_sequences,
    returnState: layer.return_state,
  });
}

function weightTensors(layer) {
  const G = GATES[layer.cell];
  const H = layer.units;
  const w = layer.weights;
  const ts = [
    tf.tensor2d(w.kernel, [layer.inputSize, G * H]),
    tf.tensor2d(w.recurrent_kernel, [H, G * H]),
  ];
  if (layer.use_bias) {
    ts.push(layer.cell === 'gru' && layer.reset_after ?
      tf.tensor2d(w.bias, [2, G * H]) : tf.tensor1d(w.bias));
  }
  return ts;
}

function rnnWeightShapes(layer) {
  const G = GATES[layer.cell];
  const H = layer.units;
  const shapes = [[layer.inputSize, G * H], [H, G * H]];
  if (layer.use_bias) shapes.push(layer.cell === 'gru' && layer.reset_after ? [2, G * H] : [G * H]);
  return shapes;
}

function sameArray(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Sets the generator's weights on a built tfjs layer and checks that
// getWeights() returns them in the order and shapes the model JSON uses.
function setAndCheckWeights(tfLayer, tensors, shapes, arrays) {
  tfLayer.setWeights(tensors);
  const got = tfLayer.getWeights();
  if (got.length !== arrays.length) throw new Error('weight count mismatch on ' + tfLayer.name);
  got.forEach((t, i) => {
    if (JSON.stringify(t.shape) !== JSON.stringify(shapes[i])) {
      throw new Error(`weight ${i} of ${tfLayer.name}: shape ${t.shape} != ${shapes[i]}`);
    }
    if (!sameArray(t.dataSync(), arrays[i])) throw new Error(`weight ${i} of ${tfLayer.name} differs`);
  });
  tensors.forEach((t) => t.dispose());
}

function rnnArrays(layer) {
  const a = [layer.weights.kernel, layer.weights.recurrent_kernel];
  if (layer.use_bias) a.push(layer.weights.bias);
  return a;
}

// Builds tfjs layers for the model. A Bidirectional without an explicit
// backward layer uses tfjs' own wrapper; with one, two tfjs RNN layers that
// composeBidirectional() combines. `composedToo` also builds standalone
// layers for the wrapped case, to check composeBidirectional() against tfjs.
function buildTfjs(model, composedToo) {
  return model.layers.map((l) => {
    if (l.kind === 'embedding') {
      const layer = tf.layers.embedding({ inputDim: l.vocab, outputDim: l.dim, embeddingsInitializer: 'zeros' });
      tf.tidy(() => layer.apply(tf.zeros([1, 1], 'int32')));
      setAndCheckWeights(layer, [tf.tensor2d(l.embeddings, [l.vocab, l.dim])], [[l.vocab, l.dim]], [l.embeddings]);
      return { kind: 'embedding', layer };
    }
    if (l.kind === 'dense') {
      const layer = tf.layers.dense({
        units: l.units, activation: tfjsActivation(l.activation), useBias: l.use_bias,
        kernelInitializer: 'zeros', biasInitializer: 'zeros',
      });
      tf.tidy(() => layer.apply(tf.zeros([1, l.inputSize])));
      const ts = [tf.tensor2d(l.kernel, [l.inputSize, l.units])];
      const shapes = [[l.inputSize, l.units]];
      const arrays = [l.kernel];
      if (l.use_bias) {
        ts.push(tf.tensor1d(l.bias));
        shapes.push([l.units]);
        arrays.push(l.bias);
      }
      setAndCheckWeights(layer, ts, shapes, arrays);
      return { kind: 'dense', layer };
    }
    const built = { kind: 'bidirectional' };
    const dummy = () => tf.zeros([1, 1, l.forward.inputSize]);
    const standalone = () => {
      const f = tfjsRnnLayer(l.forward);
      const b = tfjsRnnLayer(l.backward);
      for (const [tl, nl] of [[f, l.forward], [b, l.backward]]) {
        tf.tidy(() => { tl.apply(dummy()); });
        setAndCheckWeights(tl, weightTensors(nl), rnnWeightShapes(nl), rnnArrays(nl));
      }
      return { forward: f, backward: b };
    };
    if (l.explicitBackward) {
      built.composed = standalone();
    } else {
      const wrapper = tf.layers.bidirectional({
        layer: tfjsRnnLayer(l.forward),
        mergeMode: l.merge_mode === 'none' ? null : l.merge_mode,
      });
      tf.tidy(() => { wrapper.apply(dummy()); });
      // Bidirectional.getWeights(): forward kernel, recurrent_kernel, bias,
      // then the backward layer's.
      setAndCheckWeights(wrapper,
        weightTensors(l.forward).concat(weightTensors(l.backward)),
        rnnWeightShapes(l.forward).concat(rnnWeightShapes(l.backward)),
        rnnArrays(l.forward).concat(rnnArrays(l.backward)));
      if (wrapper.backwardLayer.goBackwards !== l.backward.go_backwards) {
        throw new Error('tfjs backward go_backwards differs from the model');
      }
      built.wrapper = wrapper;
      if (composedToo) built.composed = standalone();
    }
    return built;
  });
}

// Keras' Bidirectional.call, for an explicit backward layer:
//   y = forward(x); y_rev = backward(x)   (backward has the opposite go_backwards)
//   if return_sequences: y_rev = reverse(y_rev, time axis)
//   merge; with return_state the states are forward's, then backward's.
function composeBidirectional(fwdLayer, bwdLayer, x, mergeMode, returnSequences, returnState, initialState) {
  let fState = null;
  let bState = null;
  if (initialState) {
    if (initialState.length % 2) throw new Error('initial state needs an even count');
    fState = initialState.slice(0, initialState.length / 2);
    bState = initialState.slice(initialState.length / 2);
  }
  let y = fState ? fwdLayer.apply(x, { initialState: fState }) : fwdLayer.apply(x);
  let yRev = bState ? bwdLayer.apply(x, { initialState: bState }) : bwdLayer.apply(x);
  let states = [];
  if (returnState) {
    states = y.slice(1).concat(yRev.slice(1));
    y = y[0];
    yRev = yRev[0];
  }
  if (returnSequences) yRev = tf.reverse(yRev, 1);
  let output;
  if (mergeMode === 'concat') output = tf.concat([y, yRev], -1);
  else if (mergeMode === 'sum') output = tf.add(y, yRev);
  else if (mergeMode === 'ave') output = tf.mul(0.5, tf.add(y, yRev));
  else if (mergeMode === 'mul') output = tf.mul(y, yRev);
  else if (mergeMode === 'none') output = [y, yRev];
  else throw new Error('bad merge mode ' + mergeMode);
  if (!returnState) return output;
  return (mergeMode === 'none' ? output : [output]).concat(states);
}

// Tensor [1, ...rest] -> {shape: rest, values: Float32Array}
function squeezeBatch(t) {
  if (t.shape[0] !== 1) throw new Error('expected batch 1');
  return { shape: t.shape.slice(1), values: Float32Array.from(t.dataSync()) };
}

// Evaluates one sequence. `useComposed` evaluates wrapped Bidirectional
// layers with composeBidirectional() instead of tfjs' wrapper.
function evalTfjs(model, built, seq, useComposed) {
  return tf.tidy(() => {
    const T = seq.length;
    let x;
    if (seq.token_ids) x = tf.tensor2d(seq.token_ids, [1, T], 'int32');
    else x = tf.tensor3d(seq.features, [1, T, model.input_dim]);
    const result = { output: null, forward: null, backward: null, states: [] };
    let firstBi = true;
    model.layers.forEach((l, i) => {
      const b = built[i];
      if (l.kind !== 'bidirectional') {
        x = b.layer.apply(x);
        return;
      }
      let init = null;
      if (firstBi && seq.initial_state) init = seq.initial_state.map((s) => tf.tensor2d(s, [1, s.length]));
      firstBi = false;
      const f = l.forward;
      let out;
      if (b.wrapper && !useComposed) {
        out = init ? b.wrapper.apply(x, { initialState: init }) : b.wrapper.apply(x);
      } else {
        out = composeBidirectional(b.composed.forward, b.composed.backward, x, l.merge_mode,
          f.return_sequences, f.return_state, init);
      }
      if (!Array.isArray(out)) out = [out];
      const nOut = l.merge_mode === 'none' ? 2 : 1;
      const states = out.slice(nOut);
      const nStates = (f.cell === 'lstm' ? 2 : 1) + (l.backward.cell === 'lstm' ? 2 : 1);
      if (states.length !== (f.return_state ? nStates : 0)) throw new Error('unexpected state count');
      result.states = states.map(squeezeBatch);
      if (l.merge_mode === 'none') {
        result.forward = squeezeBatch(out[0]);
        result.backward = squeezeBatch(out[1]);
        x = null;
      } else {
        result.forward = null;
        result.backward = null;
        x = out[0];
      }
    });
    if (x) result.output = squeezeBatch(x);
    return result;
  });
}

// ---------------------------------------------------------------------------
// Reference pipelines (float64 JS and ONNX Runtime) in plain arrays.

// Keras RNN layer in float64: returns per-step outputs in processing order,
// the last output and the final states.
function runRnn64(layer, x, T, inSize, init) {
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
  const mx = new Float64Array(G * H);
  const mh = new Float64Array(G * H);
  const resetAfter = layer.cell === 'gru' && layer.reset_after;
  for (let s = 0; s < T; s++) {
    const t = layer.go_backwards ? T - 1 - s : s;
    mx.fill(0);
    mh.fill(0);
    for (let k = 0; k < inSize; k++) {
      const xv = x[t * inSize + k];
      for (let j = 0; j < G * H; j++) mx[j] += xv * K[k * G * H + j];
    }
    if (B) for (let j = 0; j < G * H; j++) mx[j] += B[j];
    // Recurrent product; a reset-before GRU computes its h block later.
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
  return { seq, last: h, states };
}

async function runner64(fwd, bwd, x, T, inSize, initialState) {
  const nf = fwd.cell === 'lstm' ? 2 : 1;
  return [
    runRnn64(fwd, x, T, inSize, initialState ? initialState.slice(0, nf) : null),
    runRnn64(bwd, x, T, inSize, initialState ? initialState.slice(nf) : null),
  ];
}

async function runnerOnnx(fwd, bwd, x, T, inSize, initialState) {
  return onnx.runBidirectionalRnns(fwd, bwd, Float32Array.from(x), T, inSize, initialState);
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

async function evalReference(model, seq, runner) {
  const T = seq.length;
  let x;
  let inSize = model.input_dim;
  let seqMode = true;
  const result = { output: null, forward: null, backward: null, states: [] };
  let firstBi = true;
  for (const l of model.layers) {
    const rows = seqMode ? T : 1;
    if (l.kind === 'embedding') {
      x = new Float64Array(T * l.dim);
      seq.token_ids.forEach((id, t) => x.set(l.embeddings.subarray(id * l.dim, (id + 1) * l.dim), t * l.dim));
      inSize = l.dim;
      continue;
    }
    if (!x) x = Float64Array.from(seq.features);
    if (l.kind === 'dense') {
      x = applyDense64(l, x, rows);
      inSize = l.units;
      continue;
    }
    const init = firstBi && seq.initial_state ? seq.initial_state : null;
    firstBi = false;
    const f = l.forward;
    const b = l.backward;
    const [rf, rb] = await runner(f, b, x, T, inSize, init);
    const rs = f.return_sequences;
    const yf = rs ? Float64Array.from(rf.seq) : Float64Array.from(rf.last);
    const yb = rs ? flipTime(Float64Array.from(rb.seq), T, b.units) : Float64Array.from(rb.last);
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
  }
  if (x) result.output = { shape: seqMode ? [T, inSize] : [inSize], values: x };
  return result;
}

function maxDiff(a, b, what) {
  const keys = ['output', 'forward', 'backward'];
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
  for (const k of keys) cmp(a[k], b[k], k);
  if (a.states.length !== b.states.length) throw new Error(`${what}: state count differs`);
  a.states.forEach((s, i) => cmp(s, b.states[i], 'state ' + i));
  if (Number.isNaN(m)) throw new Error(`${what}: NaN difference`);
  return m;
}

// ---------------------------------------------------------------------------
// JSON output.

function tensorJson(shape, values) {
  return { shape: shape.slice(), values: Float32Array.from(values) };
}

function rnnWeightsJson(layer) {
  const [ks, rks, bs] = rnnWeightShapes(layer);
  const w = {
    kernel: tensorJson(ks, layer.weights.kernel),
    recurrent_kernel: tensorJson(rks, layer.weights.recurrent_kernel),
  };
  if (layer.use_bias) w.bias = tensorJson(bs, layer.weights.bias);
  return w;
}

function rnnLayerJson(layer) {
  const j = {
    name: layer.name,
    cell: { simple_rnn: 'SIMPLE_RNN', lstm: 'LSTM', gru: 'GRU' }[layer.cell],
    units: layer.units,
    activation: layer.activation,
  };
  if (layer.cell !== 'simple_rnn') j.recurrent_activation = layer.recurrent_activation;
  j.use_bias = layer.use_bias;
  if (layer.cell === 'gru') j.reset_after = layer.reset_after;
  j.go_backwards = layer.go_backwards;
  j.return_sequences = layer.return_sequences;
  j.return_state = layer.return_state;
  j.weights = rnnWeightsJson(layer);
  return j;
}

function modelJson(model) {
  return {
    name: model.name,
    input_dim: model.input_dim,
    layers: model.layers.map((l) => {
      if (l.kind === 'embedding') {
        return {
          embedding: {
            name: l.name, input_dim: l.vocab, output_dim: l.dim,
            embeddings: tensorJson([l.vocab, l.dim], l.embeddings),
          },
        };
      }
      if (l.kind === 'dense') {
        const d = { name: l.name, units: l.units, activation: l.activation, use_bias: l.use_bias };
        d.kernel = tensorJson([l.inputSize, l.units], l.kernel);
        if (l.use_bias) d.bias = tensorJson([l.units], l.bias);
        return { dense: d };
      }
      const b = { name: l.name, layer: rnnLayerJson(l.forward) };
      if (l.explicitBackward) b.backward_layer = rnnLayerJson(l.backward);
      else b.backward_weights = rnnWeightsJson(l.backward);
      b.merge_mode = l.merge_mode;
      return { bidirectional: b };
    }),
  };
}

function resultJson(r) {
  const j = {};
  if (r.output) j.output = tensorJson(r.output.shape, r.output.values);
  if (r.forward) j.forward = tensorJson(r.forward.shape, r.forward.values);
  if (r.backward) j.backward = tensorJson(r.backward.shape, r.backward.values);
  if (r.states.length) j.states = r.states.map((s) => tensorJson(s.shape, s.values));
  return j;
}

function sequenceJson(s) {
  const j = { length: s.length };
  if (s.features) j.features = s.features;
  if (s.token_ids) j.token_ids = s.token_ids;
  if (s.initial_state) j.initial_state = s.initial_state.map((v) => tensorJson([v.length], v));
  return j;
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

// Parses the JSON back to plain numbers for the schema check.
function plain(value) {
  return JSON.parse(stringify(value, 0));
}

// ---------------------------------------------------------------------------
// The cases.

const L = (units, o = {}) => Object.assign({ cell: 'lstm', units }, o);
const GRU = (units, o = {}) => Object.assign({ cell: 'gru', units, reset_after: true }, o);
const GRU0 = (units, o = {}) => Object.assign({ cell: 'gru', units, reset_after: false }, o);
const S = (units, o = {}) => Object.assign({ cell: 'simple_rnn', units }, o);
const SEQ = { return_sequences: true };
const STATE = { return_state: true };
const SEQ_STATE = { return_sequences: true, return_state: true };
const bi = (forward, merge_mode = 'concat', extra = {}) =>
  Object.assign({ type: 'bidirectional', forward, merge_mode }, extra);
const dense = (units, activation) => ({ type: 'dense', units, activation });

// SimpleRNN with an unbounded activation: a smaller recurrent kernel keeps
// the recurrence contracting over 37 steps.
const UNBOUNDED_SCALE = { recurrent: 1 };

function single(name, description, input_dim, layer, lengths, extra = {}) {
  return Object.assign({ name, description, input_dim, layers: [layer], lengths }, extra);
}

const CASES = [
  // LSTM: every merge mode; return_sequences x return_state.
  single('lstm_concat_seq', 'Bidirectional(LSTM 8, return_sequences), concat; lengths 7, 1, 37, 2',
    3, bi(L(8, SEQ)), [7, 1, 37, 2]),
  single('lstm_concat_last', 'Bidirectional(LSTM 8), concat; last outputs only',
    3, bi(L(8)), [2, 7, 37]),
  single('lstm_concat_seq_state', 'Bidirectional(LSTM 8, return_sequences, return_state), concat',
    3, bi(L(8, SEQ_STATE)), [1, 7, 37, 100]),
  single('lstm_concat_last_state', 'Bidirectional(LSTM 8, return_state), concat; input size 16',
    16, bi(L(8, STATE)), [37, 2, 7]),
  single('lstm_sum_last_state', 'Bidirectional(LSTM 12, return_state), sum',
    16, bi(L(12, STATE), 'sum'), [100, 1, 7]),
  single('lstm_mul_seq_equal_lengths', 'Bidirectional(LSTM 10, return_sequences), mul; four sequences of length 10',
    3, bi(L(10, SEQ), 'mul'), [10, 10, 10, 10]),
  single('lstm_ave_seq_state', 'Bidirectional(LSTM 8, return_sequences, return_state), ave',
    3, bi(L(8, SEQ_STATE), 'ave'), [2, 37, 7, 1]),
  single('lstm_none_seq', 'Bidirectional(LSTM 8, return_sequences), merge_mode none: forward and backward apart',
    3, bi(L(8, SEQ), 'none'), [7, 1, 37]),
  single('lstm_none_last_state', 'Bidirectional(LSTM 8, return_state), merge_mode none',
    16, bi(L(8, STATE), 'none'), [2, 7, 37]),

  // GRU reset_after=False (tfjs' GRU).
  single('gru_reset_after_false_concat_seq', 'Bidirectional(GRU 8 reset_after=False, return_sequences), concat',
    3, bi(GRU0(8, SEQ)), [7, 1, 37, 2]),
  single('gru_reset_after_false_sum_last', 'Bidirectional(GRU 8 reset_after=False), sum',
    16, bi(GRU0(8), 'sum'), [37, 7, 2]),
  single('gru_reset_after_false_concat_seq_state',
    'Bidirectional(GRU 8 reset_after=False, return_sequences, return_state), concat',
    3, bi(GRU0(8, SEQ_STATE)), [1, 7, 100]),
  single('gru_reset_after_false_sum_last_state', 'Bidirectional(GRU 8 reset_after=False, return_state), sum',
    16, bi(GRU0(8, STATE), 'sum'), [2, 37, 7, 7]),

  // GRU reset_after=True (Keras' default; the generator's KerasGRUCell).
  single('gru_reset_after_true_concat_seq', 'Bidirectional(GRU 8 reset_after=True, return_sequences), concat',
    3, bi(GRU(8, SEQ)), [7, 1, 37, 2]),
  single('gru_reset_after_true_sum_last', 'Bidirectional(GRU 8 reset_after=True), sum',
    16, bi(GRU(8), 'sum'), [37, 7, 2]),
  single('gru_reset_after_true_concat_seq_state',
    'Bidirectional(GRU 8 reset_after=True, return_sequences, return_state), concat',
    3, bi(GRU(8, SEQ_STATE)), [1, 7, 100]),
  single('gru_reset_after_true_sum_last_state', 'Bidirectional(GRU 8 reset_after=True, return_state), sum',
    16, bi(GRU(8, STATE), 'sum'), [2, 37, 7, 7]),
  single('gru_reset_after_true_none_seq_state',
    'Bidirectional(GRU 6 reset_after=True, return_sequences, return_state), merge_mode none',
    3, bi(GRU(6, SEQ_STATE), 'none'), [7, 2, 37]),
  single('gru_reset_after_true_long_units64',
    'Bidirectional(GRU 64 reset_after=True, return_sequences), concat; lengths up to 150',
    16, bi(GRU(64, SEQ)), [150, 37, 7]),

  // SimpleRNN.
  single('simple_rnn_concat_seq_input1', 'Bidirectional(SimpleRNN 8, return_sequences), concat; input size 1',
    1, bi(S(8, SEQ)), [7, 1, 37, 2]),
  single('simple_rnn_sum_last', 'Bidirectional(SimpleRNN 8), sum',
    3, bi(S(8), 'sum'), [37, 7, 2]),
  single('simple_rnn_concat_seq_state', 'Bidirectional(SimpleRNN 8, return_sequences, return_state), concat',
    3, bi(S(8, SEQ_STATE)), [1, 7, 100]),
  single('simple_rnn_sum_last_state', 'Bidirectional(SimpleRNN 8, return_state), sum',
    16, bi(S(8, STATE), 'sum'), [2, 37, 7]),

  // use_bias=False, each with another activation.
  single('simple_rnn_no_bias_relu', 'Bidirectional(SimpleRNN 8, relu, use_bias=False, return_sequences), concat',
    3, bi(S(8, { activation: 'relu', use_bias: false, return_sequences: true })), [7, 1, 37],
    { scale: UNBOUNDED_SCALE }),
  single('lstm_no_bias_softplus', 'Bidirectional(LSTM 8, softplus, use_bias=False, return_state), sum',
    3, bi(L(8, { activation: 'softplus', use_bias: false, return_state: true }), 'sum'), [37, 2, 7]),
  single('gru_reset_after_false_no_bias_elu',
    'Bidirectional(GRU 8 reset_after=False, elu, use_bias=False, return_sequences), concat',
    3, bi(GRU0(8, { activation: 'elu', use_bias: false, return_sequences: true })), [7, 37, 1]),
  single('gru_reset_after_true_no_bias_hard_sigmoid',
    'Bidirectional(GRU 8 reset_after=True, activation and recurrent_activation hard_sigmoid, use_bias=False), concat',
    3, bi(GRU(8, { activation: 'hard_sigmoid', recurrent_activation: 'hard_sigmoid', use_bias: false })),
    [37, 7, 2]),

  // Explicit backward_layer.
  single('lstm_backward_layer_softsign',
    'Bidirectional(LSTM 8 tanh, backward_layer=LSTM 8 softsign, return_sequences, return_state), concat',
    3, bi(L(8, SEQ_STATE), 'concat', { backward: L(8, { activation: 'softsign' }) }), [7, 1, 37, 2]),
  single('lstm_backward_layer_gru',
    'Bidirectional(LSTM 8, backward_layer=GRU 5 reset_after=True, return_sequences, return_state), concat',
    3, bi(L(8, SEQ_STATE), 'concat', { backward: GRU(5) }), [7, 1, 37, 2]),
  single('gru_backward_layer_elu_sum',
    'Bidirectional(GRU 8 reset_after=True tanh, backward_layer=GRU 8 reset_after=True elu), sum',
    16, bi(GRU(8), 'sum', { backward: GRU(8, { activation: 'elu' }) }), [37, 2, 7]),

  // initial_state.
  single('lstm_initial_state', 'Bidirectional(LSTM 8, return_sequences), concat, with initial_state',
    3, bi(L(8, SEQ)), [7, 1, 37], { initial_state: true }),
  single('lstm_initial_state_return_state', 'Bidirectional(LSTM 8, return_state), sum, with initial_state',
    16, bi(L(8, STATE), 'sum'), [2, 37, 7], { initial_state: true }),
  single('gru_reset_after_true_initial_state_return_state',
    'Bidirectional(GRU 8 reset_after=True, return_sequences, return_state), concat, with initial_state',
    3, bi(GRU(8, SEQ_STATE)), [7, 1, 37], { initial_state: true }),
  single('gru_reset_after_false_initial_state',
    'Bidirectional(GRU 6 reset_after=False, return_sequences), ave, with initial_state',
    3, bi(GRU0(6, SEQ), 'ave'), [2, 37, 7], { initial_state: true }),

  // Activations.
  single('simple_rnn_linear', 'Bidirectional(SimpleRNN 8, linear, return_sequences), concat',
    3, bi(S(8, { activation: 'linear', return_sequences: true })), [7, 37, 1], { scale: UNBOUNDED_SCALE }),
  single('lstm_sigmoid_hard_sigmoid',
    'Bidirectional(LSTM 8, activation sigmoid, recurrent_activation hard_sigmoid, return_sequences), concat',
    3, bi(L(8, { activation: 'sigmoid', recurrent_activation: 'hard_sigmoid', return_sequences: true })),
    [7, 1, 37]),
  single('lstm_swish', 'Bidirectional(LSTM 8, swish, return_sequences), concat',
    3, bi(L(8, { activation: 'swish', return_sequences: true })), [37, 7, 2]),

  // Forward layer with go_backwards=True (implicit backward: go_backwards=False).
  single('lstm_forward_go_backwards_seq',
    'Bidirectional(LSTM 8, go_backwards=True, return_sequences), concat; backward copy has go_backwards=False',
    3, bi(L(8, { go_backwards: true, return_sequences: true })), [7, 1, 37]),
  single('simple_rnn_forward_go_backwards_selu_state',
    'Bidirectional(SimpleRNN 8, selu, go_backwards=True, return_state), sum',
    3, bi(S(8, { activation: 'selu', go_backwards: true, return_state: true }), 'sum'), [2, 37, 7],
    { scale: UNBOUNDED_SCALE }),

  // Sizes.
  single('lstm_input128', 'Bidirectional(LSTM 32, return_sequences), concat; input size 128',
    128, bi(L(32, SEQ)), [7, 37, 1]),
  single('lstm_long', 'Bidirectional(LSTM 16, return_sequences), concat; lengths 150 and 100',
    16, bi(L(16, SEQ)), [150, 100, 37, 1]),

  // Stacks and heads.
  {
    name: 'stack_lstm_gru_dense_softmax',
    description: 'Bidirectional(LSTM 16, return_sequences) -> Bidirectional(GRU 8 reset_after=True, ' +
      'return_sequences), concat -> Dense 5 softmax per time step',
    input_dim: 16,
    layers: [bi(L(16, SEQ)), bi(GRU(8, SEQ)), dense(5, 'softmax')],
    lengths: [7, 37, 1, 100],
  },
  {
    name: 'lstm_last_dense_sigmoid',
    description: 'Bidirectional(LSTM 16), concat -> Dense 3 sigmoid',
    input_dim: 16,
    layers: [bi(L(16)), dense(3, 'sigmoid')],
    lengths: [37, 2, 7, 100],
  },
  {
    name: 'stack_gru_simple_rnn_state_dense_tanh',
    description: 'Bidirectional(GRU 8 reset_after=False, return_sequences), concat -> ' +
      'Bidirectional(SimpleRNN 6, return_state), sum -> Dense 4 tanh; states from the second layer',
    input_dim: 3,
    layers: [bi(GRU0(8, SEQ)), bi(S(6, STATE), 'sum'), dense(4, 'tanh')],
    lengths: [7, 1, 37],
  },
  {
    name: 'embedding_gru_dense_relu_linear',
    description: 'Embedding(50, 8) -> Bidirectional(GRU 12 reset_after=True, return_sequences), concat -> ' +
      'Dense 16 relu -> Dense 6 linear; six token sequences',
    input_dim: 0,
    layers: [{ type: 'embedding', vocab: 50, dim: 8 }, bi(GRU(12, SEQ)), dense(16, 'relu'), dense(6, 'linear')],
    lengths: [7, 1, 37, 2, 100, 12],
  },
  {
    name: 'example_tagger',
    description: 'Bidirectional(LSTM 16, return_sequences), concat -> Dense 4 softmax per time step; ' +
      'input size 8 (the bundled example model)',
    input_dim: 8,
    layers: [bi(L(16, SEQ)), dense(4, 'softmax')],
    lengths: [7, 1, 37, 12],
  },
];

// ---------------------------------------------------------------------------

function fmtDiff(d) {
  return d === 0 ? '0' : d.toExponential(1);
}

async function runCase(spec) {
  const rng = makeRng(hashString(spec.name));
  const model = buildModel(spec, rng);
  const sequences = makeSequences(spec, model, rng);
  const bis = model.layers.filter((l) => l.kind === 'bidirectional');
  const custom = bis.some((l) => l.explicitBackward ||
    [l.forward, l.backward].some((d) => d.cell === 'gru' && d.reset_after));
  const wrapped = bis.some((l) => !l.explicitBackward);

  const built = buildTfjs(model, wrapped);
  const expected = sequences.map((s) => evalTfjs(model, built, s, false));

  // Self-check: composeBidirectional() (used for explicit backward layers)
  // must agree with tfjs' Bidirectional wherever tfjs' wrapper applies.
  let composeDiff = null;
  if (wrapped) {
    composeDiff = 0;
    sequences.forEach((s, i) => {
      composeDiff = Math.max(composeDiff, maxDiff(expected[i], evalTfjs(model, built, s, true), 'composition'));
    });
    if (composeDiff > 1e-7) throw new Error(`${spec.name}: composition differs from tfjs by ${composeDiff}`);
  }

  let diff64 = 0;
  for (let i = 0; i < sequences.length; i++) {
    diff64 = Math.max(diff64, maxDiff(expected[i], await evalReference(model, sequences[i], runner64), 'float64'));
  }
  if (diff64 > TOLERANCE) throw new Error(`${spec.name}: float64 reference differs by ${diff64}`);

  const ortOk = bis.every((l) => onnx.layerOnnxCompatible(l.forward) && onnx.layerOnnxCompatible(l.backward));
  let diffOrt = null;
  if (ortOk) {
    diffOrt = 0;
    onnx.usage.clear();
    for (let i = 0; i < sequences.length; i++) {
      diffOrt = Math.max(diffOrt, maxDiff(expected[i], await evalReference(model, sequences[i], runnerOnnx), 'onnx'));
    }
    if (diffOrt > TOLERANCE) throw new Error(`${spec.name}: onnxruntime differs by ${diffOrt}`);
  }

  const checks = [];
  if (ortOk) checks.push(`onnxruntime ${[...onnx.usage].join(' + ')}, max abs diff ${fmtDiff(diffOrt)}`);
  else {
    const missing = new Set();
    for (const l of bis) {
      for (const d of [l.forward, l.backward]) {
        for (const a of [d.activation, d.recurrent_activation]) if (a && !onnx.onnxSupports(a)) missing.add(a);
      }
    }
    checks.push(`onnxruntime: not applicable (ONNX RNN operators have no ${[...missing].join(', ')})`);
  }
  checks.push(`float64 Keras equations, max abs diff ${fmtDiff(diff64)}`);

  const golden = {
    name: spec.name,
    description: spec.description,
    reference: custom ? 'tfjs+keras-equations' : 'tfjs',
    cross_check: checks.join('; '),
    model: modelJson(model),
    sequences: sequences.map(sequenceJson),
    expected: expected.map(resultJson),
    tolerance: TOLERANCE,
  };
  protoCheck.checkGoldenCase(plain(golden), spec.name);
  for (const b of built) {
    if (b.layer) b.layer.dispose();
    if (b.wrapper) b.wrapper.dispose();
    if (b.composed) { b.composed.forward.dispose(); b.composed.backward.dispose(); }
  }
  return { golden, diffOrt, diff64, composeDiff };
}

async function main() {
  await tf.setBackend('cpu');
  await tf.ready();
  const names = new Set();
  for (const c of CASES) {
    if (names.has(c.name)) throw new Error('duplicate case ' + c.name);
    names.add(c.name);
  }
  const only = process.argv.slice(2);
  const selected = only.length ? CASES.filter((c) => only.includes(c.name)) : CASES;
  fs.mkdirSync(FIXTURE_DIR, { recursive: true });
  if (!only.length) {
    for (const f of fs.readdirSync(FIXTURE_DIR)) {
      if (f.endsWith('.json')) fs.unlinkSync(path.join(FIXTURE_DIR, f));
    }
  }
  let total = 0;
  let worstOrt = 0;
  let worst64 = 0;
  for (const spec of selected) {
    const { golden, diffOrt, diff64, composeDiff } = await runCase(spec);
    const text = stringify(golden, 0) + '\n';
    fs.writeFileSync(path.join(FIXTURE_DIR, spec.name + '.json'), text);
    total += text.length;
    if (diffOrt !== null) worstOrt = Math.max(worstOrt, diffOrt);
    worst64 = Math.max(worst64, diff64);
    console.log([
      spec.name.padEnd(46),
      (text.length / 1024).toFixed(0).padStart(5) + ' KiB',
      'ort ' + (diffOrt === null ? '   n/a ' : fmtDiff(diffOrt).padStart(7)),
      'f64 ' + fmtDiff(diff64).padStart(7),
      composeDiff === null ? '' : 'compose ' + fmtDiff(composeDiff),
    ].join('  '));
  }
  console.log(`${selected.length} fixtures, ${(total / 1024 / 1024).toFixed(2)} MiB; ` +
    `worst onnxruntime diff ${fmtDiff(worstOrt)}, worst float64 diff ${fmtDiff(worst64)} ` +
    `(onnxruntime-node ${onnx.ortVersion}, tfjs ${tf.version.tfjs})`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
