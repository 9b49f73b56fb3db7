'use strict';
// Shared code of the two fixture generators, generate.js (fixtures/) and
// generate_tfjs_models.js (tfjs_models/). Each piece lives here once so the
// two generators cannot drift apart:
// - the seeded PRNG and float32 helpers;
// - the activations, Keras' GRU reset_after=True cell for tfjs (KerasGRU);
// - the case-spec shorthands and the normalized model built from a case spec
//   (weights in Keras layouts);
// - tfjs evaluation: standalone tfjs layers composed as Keras'
//   Bidirectional.call (composeBidirectional), or tfjs' own Bidirectional;
// - the float64 re-implementation of the Keras equations, with masking in two
//   semantics (tfjs' and Keras'), and the ONNX Runtime cross-check;
// - the GoldenCase JSON writer and a writer that reproduces Python's
//   json.dumps() byte for byte (tensorflowjs_converter's model.json).

const tf = require('@tensorflow/tfjs');
const onnx = require('./onnx_reference');
const protoCheck = require('./proto_check');

// Largest max abs difference any cross-check may show.
const TOLERANCE = 1e-5;

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
// Case-spec shorthands, for the generators' CASES tables.

const L = (units, o = {}) => Object.assign({ cell: 'lstm', units }, o);
const GRU = (units, o = {}) => Object.assign({ cell: 'gru', units, reset_after: true }, o);
const GRU0 = (units, o = {}) => Object.assign({ cell: 'gru', units, reset_after: false }, o);
const S = (units, o = {}) => Object.assign({ cell: 'simple_rnn', units }, o);
const SEQ = { return_sequences: true };
const STATE = { return_state: true };
const SEQ_STATE = { return_sequences: true, return_state: true };
const bi = (forward, merge_mode = 'concat', extra = {}) =>
  Object.assign({ type: 'bidirectional', forward, merge_mode }, extra);
const dense = (units, activation, o = {}) => Object.assign({ type: 'dense', units, activation }, o);

// SimpleRNN with an unbounded activation: a smaller recurrent kernel keeps
// the recurrence contracting over 37 steps.
const UNBOUNDED_SCALE = { recurrent: 1 };

// The cases named on the command line (all when none), after checking that
// the table's names are unique and the named ones exist.
function selectCases(cases, only) {
  const names = new Set();
  for (const c of cases) {
    if (names.has(c.name)) throw new Error('duplicate case ' + c.name);
    names.add(c.name);
  }
  for (const n of only) if (!names.has(n)) throw new Error('unknown case ' + n);
  return only.length ? cases.filter((c) => only.includes(c.name)) : cases;
}

// ---------------------------------------------------------------------------
// Case spec -> normalized model: plain objects, Keras snake_case options,
// Float32Array weights in Keras layouts.

const GATES = { simple_rnn: 1, lstm: 4, gru: 3 };

// `keras` holds tf_keras-only options (unroll, dropout, constraints, ...)
// that only generate_tfjs_models.js' converter-flavour model.json records.
function rnnDefaults(spec) {
  const layer = Object.assign({
    activation: 'tanh',
    recurrent_activation: 'sigmoid',
    use_bias: true,
    go_backwards: false,
    return_sequences: false,
    return_state: false,
    keras: {},
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

// The `name`s are the layer names of biserve's model JSON (generate.js);
// generate_tfjs_models.js names its layers as Keras or tfjs would.
// The order of the rng draws fixes every weight: do not reorder them.
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
        kind: 'embedding', name: 'embedding', vocab: ls.vocab, dim: ls.dim, mask_zero: !!ls.mask_zero,
        embeddings: randomF32(rng, ls.vocab * ls.dim, 1),
      });
      featureSize = ls.dim;
    } else if (ls.type === 'masking') {
      model.layers.push({ kind: 'masking', mask_value: 0 });
    } else if (ls.type === 'conv1d') {
      const c = { kind: 'conv1d', filters: ls.filters, kernel_size: ls.kernel_size, inputSize: featureSize };
      c.kernel = randomF32(rng, ls.kernel_size * featureSize * ls.filters, 1 / Math.sqrt(featureSize));
      c.bias = randomF32(rng, ls.filters, scale.bias);
      model.layers.push(c);
      featureSize = ls.filters;
    } else if (ls.type === 'bidirectional') {
      if (!sequenceOut) throw new Error('a Bidirectional layer needs sequences from the layer before');
      const suffix = biCount ? '_' + biCount : '';
      const fwd = rnnDefaults(ls.forward);
      fwd.name = fwd.name || fwd.cell + suffix;
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
        bwd.name = bwd.name || 'backward_' + bwd.cell + suffix;
      } else {
        bwd = Object.assign({}, fwd, { go_backwards: !fwd.go_backwards });
      }
      bwd.inputSize = featureSize;
      bwd.weights = makeRnnWeights(rng, bwd, featureSize, scale);
      const merge = ls.merge_mode || 'concat';
      model.layers.push({
        kind: 'bidirectional', name: 'bidirectional' + suffix,
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
        activation: ls.activation || 'linear', use_bias: ls.use_bias !== false,
        time_distributed: !!ls.time_distributed, inputSize: featureSize,
      };
      d.kernel = randomF32(rng, featureSize * ls.units, scale.dense / Math.sqrt(featureSize));
      d.bias = d.use_bias ? randomF32(rng, ls.units, scale.bias) : null;
      model.layers.push(d);
      denseCount++;
      featureSize = ls.units;
    } else if (ls.type === 'dropout') {
      model.layers.push({ kind: 'dropout', rate: ls.rate || 0.5 });
    } else if (ls.type === 'activation') {
      model.layers.push({ kind: 'activation', name: ls.name || 'activation', activation: ls.activation });
    } else if (ls.type === 'batch_norm' || ls.type === 'layer_norm') {
      const n = {
        kind: ls.type, name: ls.name || (ls.type === 'batch_norm' ? 'batch_normalization' : 'layer_normalization'),
        epsilon: ls.epsilon === undefined ? 1e-3 : ls.epsilon, center: ls.center !== false,
        scale: ls.scale !== false, inputSize: featureSize, onSequence: sequenceOut,
      };
      n.gamma = n.scale ? randomF32(rng, featureSize, 1).map((v) => 1 + v) : null;
      n.beta = n.center ? randomF32(rng, featureSize, scale.bias) : null;
      if (ls.type === 'batch_norm') {
        n.moving_mean = randomF32(rng, featureSize, 0.5);
        n.moving_variance = randomF32(rng, featureSize, 1).map((v) => Math.fround(0.1 + Math.abs(v)));
      }
      model.layers.push(n);
    } else if (ls.type === 'pool') {
      if (!sequenceOut) throw new Error('pooling needs sequences');
      model.layers.push({ kind: 'pool', name: ls.name || 'global_' + ls.pooling + '_pooling1d', pooling: ls.pooling });
      sequenceOut = false;
    } else {
      throw new Error('bad layer type ' + ls.type);
    }
  });
  return model;
}

// The sequences of a case, drawn after the weights from the same stream.
// spec.masked[i] lists the masked steps of sequence i: token id 0 behind an
// Embedding with mask_zero, else an all-zero feature vector.
function makeSequences(spec, model, rng) {
  if (!spec.lengths) return [];
  const first = model.layers[0];
  const firstBi = model.layers.find((l) => l.kind === 'bidirectional');
  return spec.lengths.map((T, i) => {
    const s = { length: T };
    const masked = new Set(spec.masked ? spec.masked[i] : []);
    for (const t of masked) if (t >= T) throw new Error(`${spec.name}: masked step ${t} >= length ${T}`);
    if (first.kind === 'embedding') {
      s.token_ids = Array.from({ length: T }, (_, t) => {
        if (!first.mask_zero) return rng.int(first.vocab);
        const id = 1 + rng.int(first.vocab - 1);
        return masked.has(t) ? 0 : id;
      });
    } else {
      s.features = randomF32(rng, T * spec.input_dim, 1);
      for (const t of masked) s.features.fill(0, t * spec.input_dim, (t + 1) * spec.input_dim);
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

function rnnWeightShapes(layer) {
  const G = GATES[layer.cell];
  const H = layer.units;
  const shapes = [[layer.inputSize, G * H], [H, G * H]];
  if (layer.use_bias) shapes.push(layer.cell === 'gru' && layer.reset_after ? [2, G * H] : [G * H]);
  return shapes;
}

function rnnArrays(layer) {
  const a = [layer.weights.kernel, layer.weights.recurrent_kernel];
  if (layer.use_bias) a.push(layer.weights.bias);
  return a;
}

// A layer's weights in tfjs' getWeights() order, and their shapes. For a
// Bidirectional: forward kernel, recurrent_kernel, bias, then the backward
// layer's.
function layerArraysAndShapes(l) {
  if (l.kind === 'embedding') return [[l.embeddings], [[l.vocab, l.dim]]];
  if (l.kind === 'dense') {
    const arrays = [l.kernel];
    const shapes = [[l.inputSize, l.units]];
    if (l.use_bias) { arrays.push(l.bias); shapes.push([l.units]); }
    return [arrays, shapes];
  }
  if (l.kind === 'bidirectional') {
    return [rnnArrays(l.forward).concat(rnnArrays(l.backward)),
      rnnWeightShapes(l.forward).concat(rnnWeightShapes(l.backward))];
  }
  if (l.kind === 'batch_norm' || l.kind === 'layer_norm') {
    const arrays = [l.gamma, l.beta, l.moving_mean, l.moving_variance].filter((a) => a);
    return [arrays, arrays.map(() => [l.inputSize])];
  }
  return [[], []];
}

// True when stock tfjs cannot run the model: a GRU with reset_after=True
// (KerasGRU) or an explicit backward layer (composeBidirectional).
function usesKerasEquations(model) {
  return model.layers.some((l) => l.kind === 'bidirectional' && (l.explicitBackward ||
    [l.forward, l.backward].some((d) => d.cell === 'gru' && d.reset_after)));
}

// ---------------------------------------------------------------------------
// TensorFlow.js layers and their evaluation.

// A tfjs RNN layer for a normalized RNN layer. `saved`: the layer goes into a
// model that is saved for users, so it keeps tfjs' default initializers and
// cannot be KerasGRU, which stock tfjs cannot load. Otherwise the initializers
// are zeros: the weights are set right after, and nothing draws random numbers.
function tfjsRnnLayer(layer, saved = false) {
  const args = {
    units: layer.units,
    activation: tfjsActivation(layer.activation),
    useBias: layer.use_bias,
    goBackwards: layer.go_backwards,
    returnSequences: layer.return_sequences,
    returnState: layer.return_state,
  };
  // tfjs defaults recurrentActivation to hardSigmoid (Keras: sigmoid), so it
  // is always passed explicitly.
  if (layer.cell !== 'simple_rnn') args.recurrentActivation = tfjsActivation(layer.recurrent_activation);
  if (layer.cell === 'gru' && layer.reset_after) {
    if (saved) throw new Error('tfjs has no GRU with reset_after=True');
    return new KerasGRU(args);  // its weights start as zeros
  }
  if (!saved) {
    Object.assign(args, { kernelInitializer: 'zeros', recurrentInitializer: 'zeros', biasInitializer: 'zeros' });
    if (layer.cell === 'lstm') args.unitForgetBias = false;
  }
  if (layer.cell === 'simple_rnn') return tf.layers.simpleRNN(args);
  if (layer.cell === 'lstm') return tf.layers.lstm(args);
  return tf.layers.gru(args);
}

function sameArray(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Sets weights on a built tfjs layer and checks that getWeights() returns them
// in the same order and shapes (the order the model JSON records them in).
function setAndCheckWeights(tfLayer, arrays, shapes) {
  const tensors = arrays.map((a, i) => tf.tensor(a, shapes[i]));
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

// Standalone tfjs layers with the model's weights, for evalTfjsLayers: one
// entry per model layer, {layer} (Embedding, Dense), {forward, backward} (two
// tfjs RNN layers for a Bidirectional; GRU reset_after=True is KerasGRU) or {}
// (Masking, done by hand).
function buildStandalone(model) {
  return model.layers.map((l) => {
    if (l.kind === 'embedding') {
      const layer = tf.layers.embedding({ inputDim: l.vocab, outputDim: l.dim, embeddingsInitializer: 'zeros' });
      tf.tidy(() => layer.apply(tf.zeros([1, 1], 'int32')));
      setAndCheckWeights(layer, ...layerArraysAndShapes(l));
      return { layer };
    }
    if (l.kind === 'masking') return {};
    if (l.kind === 'dense') {
      const layer = tf.layers.dense({
        units: l.units, activation: tfjsActivation(l.activation), useBias: l.use_bias,
        kernelInitializer: 'zeros', biasInitializer: 'zeros',
      });
      tf.tidy(() => layer.apply(tf.zeros([1, l.inputSize])));
      setAndCheckWeights(layer, ...layerArraysAndShapes(l));
      return { layer };
    }
    if (l.kind === 'dropout') return {};
    if (l.kind === 'activation') return { layer: tf.layers.activation({ activation: tfjsActivation(l.activation) }) };
    if (l.kind === 'pool') {
      return { layer: l.pooling === 'max' ? tf.layers.globalMaxPooling1d({}) : tf.layers.globalAveragePooling1d({}) };
    }
    if (l.kind === 'batch_norm' || l.kind === 'layer_norm') {
      const args = { axis: -1, epsilon: l.epsilon, center: l.center, scale: l.scale };
      const layer = l.kind === 'batch_norm' ? tf.layers.batchNormalization(args) : tf.layers.layerNormalization(args);
      tf.tidy(() => layer.apply(tf.zeros(l.onSequence ? [1, 1, l.inputSize] : [1, l.inputSize])));
      setAndCheckWeights(layer, ...layerArraysAndShapes(l));
      return { layer };
    }
    if (l.kind !== 'bidirectional') throw new Error('cannot evaluate ' + l.kind + ' in tfjs');
    const pair = {};
    for (const [key, nl] of [['forward', l.forward], ['backward', l.backward]]) {
      const tl = tfjsRnnLayer(nl);
      tf.tidy(() => { tl.apply(tf.zeros([1, 1, nl.inputSize])); });
      setAndCheckWeights(tl, rnnArrays(nl), rnnWeightShapes(nl));
      pair[key] = tl;
    }
    return pair;
  });
}

// Tensor [1, ...rest] -> {shape: rest, values: Float32Array}
function squeezeBatch(t) {
  if (t.shape[0] !== 1) throw new Error('expected batch 1');
  return { shape: t.shape.slice(1), values: Float32Array.from(t.dataSync()) };
}

// Keras' Bidirectional.call on two standalone tfjs layers (this is how an
// explicit backward_layer is evaluated; tfjs has none):
//   y = forward(x, mask); y_rev = backward(x, mask)
//     (the backward layer has the opposite go_backwards)
//   maskMode 'keras' and return_sequences: masked steps of y and y_rev are 0
//     (Keras 2 sets zero_output_for_mask = return_sequences on both layers);
//   maskMode 'tfjs': masked steps keep tfjs' rnn() output (the carried h);
//   y_rev flipped in time when return_sequences; merged.
// Returns what tfjs' Bidirectional returns, as an array: the merged output
// (y and y_rev for merge_mode none), then with return_state the forward
// layer's states followed by the backward layer's.
function composeBidirectional(l, fwdLayer, bwdLayer, x, mask, maskMode, fState, bState) {
  const T = x.shape[1];
  const maskT = mask ? tf.tensor2d(mask, [1, T]) : null;
  const kw = (st) => {
    const k = {};
    if (maskT) k.mask = maskT;
    if (st) k.initialState = st;
    return k;
  };
  let y = fwdLayer.apply(x, kw(fState));
  let yRev = bwdLayer.apply(x, kw(bState));
  let states = [];
  if (l.forward.return_state) {
    states = y.slice(1).concat(yRev.slice(1));
    y = y[0];
    yRev = yRev[0];
  }
  if (l.forward.return_sequences && mask && maskMode === 'keras') {
    const proc = (layer) => tf.tensor3d(layer.go_backwards ? mask.slice().reverse() : mask, [1, T, 1]);
    y = tf.mul(y, proc(l.forward));
    yRev = tf.mul(yRev, proc(l.backward));
  }
  if (l.forward.return_sequences) yRev = tf.reverse(yRev, 1);
  let outputs;
  if (l.merge_mode === 'concat') outputs = [tf.concat([y, yRev], -1)];
  else if (l.merge_mode === 'sum') outputs = [tf.add(y, yRev)];
  else if (l.merge_mode === 'ave') outputs = [tf.mul(0.5, tf.add(y, yRev))];
  else if (l.merge_mode === 'mul') outputs = [tf.mul(y, yRev)];
  else if (l.merge_mode === 'none') outputs = [y, yRev];
  else throw new Error('bad merge mode ' + l.merge_mode);
  return outputs.concat(states);
}

// Evaluates one sequence (batch of one) layer by layer on `built` (see
// buildStandalone). A Bidirectional goes through composeBidirectional, or,
// with `useWrappers`, through tfjs' own Bidirectional where its built entry
// has one (`wrapper`, generate.js). Masks come from an Embedding with
// mask_zero or a Masking layer; see composeBidirectional for maskMode.
function evalTfjsLayers(model, built, seq, { maskMode = 'tfjs', useWrappers = false } = {}) {
  return tf.tidy(() => {
    const T = seq.length;
    let x = seq.token_ids ? tf.tensor2d(seq.token_ids, [1, T], 'int32') :
      tf.tensor3d(seq.features, [1, T, model.input_dim]);
    let mask = null;  // number[T] of 0/1
    let firstBi = true;
    const result = { output: null, forward: null, backward: null, states: [] };
    model.layers.forEach((l, i) => {
      const b = built[i];
      if (l.kind === 'embedding') {
        x = b.layer.apply(x);
        if (l.mask_zero) mask = seq.token_ids.map((id) => (id !== 0 ? 1 : 0));
        return;
      }
      if (l.kind === 'masking') {
        const v = x.dataSync();
        const D = x.shape[2];
        mask = [];
        for (let t = 0; t < T; t++) {
          let any = 0;
          for (let k = 0; k < D; k++) if (v[t * D + k] !== l.mask_value) any = 1;
          mask.push(any);
        }
        x = tf.mul(x, tf.tensor3d(mask, [1, T, 1]));
        return;
      }
      if (l.kind === 'dropout') return;  // an identity at inference
      if (l.kind === 'dense' || l.kind === 'activation' || l.kind === 'batch_norm' || l.kind === 'layer_norm') {
        x = b.layer.apply(x);
        return;
      }
      if (l.kind === 'pool') {
        // tfjs ignores masks in both poolings; Keras' average leaves masked
        // steps out: masked cases take their expected values from the
        // float64 reference (evalReference).
        if (mask && l.pooling === 'average') throw new Error('tfjs pools masked steps unlike Keras');
        x = b.layer.apply(x);
        mask = null;
        return;
      }
      const f = l.forward;
      let init = null;
      if (firstBi && seq.initial_state) init = seq.initial_state.map((s) => tf.tensor2d(s, [1, s.length]));
      firstBi = false;
      let out;
      if (useWrappers && b.wrapper) {
        if (mask) throw new Error('masks are evaluated by composition only');
        out = init ? b.wrapper.apply(x, { initialState: init }) : b.wrapper.apply(x);
        if (!Array.isArray(out)) out = [out];
      } else {
        const nf = f.cell === 'lstm' ? 2 : 1;
        out = composeBidirectional(l, b.forward, b.backward, x, mask, maskMode,
          init && init.slice(0, nf), init && init.slice(nf));
      }
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
        x = out[0];
      }
      if (!f.return_sequences) mask = null;
    });
    if (x) result.output = squeezeBatch(x);
    return result;
  });
}

// ---------------------------------------------------------------------------
// Float64 Keras equations with masking, and the reference pipelines (float64
// JS and ONNX Runtime) in plain arrays.

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
  return { seq, procValid, last: h, states };
}

// A runner evaluates the two directions of a Bidirectional layer:
// (fwd, bwd, x, T, inSize, initialState, valid) -> [forward, backward], each
// {seq, procValid, last, states} as runRnn64 returns them.
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

// ONNX Runtime's RNN operators (onnx_reference.js) as a runner.
const runnerOnnx = compactingRunner((fwd, bwd, x, T, inSize, initialState) =>
  onnx.runBidirectionalRnns(fwd, bwd, Float32Array.from(x), T, inSize, initialState));

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

// Keras' Activation layer on every row, in float64.
function applyActivation64(name, x, rows, D) {
  const out = Float64Array.from(x);
  for (let r = 0; r < rows; r++) {
    const o = out.subarray(r * D, (r + 1) * D);
    if (name === 'softmax') {
      const m = Math.max(...o);
      let sum = 0;
      for (let u = 0; u < D; u++) { o[u] = Math.exp(o[u] - m); sum += o[u]; }
      for (let u = 0; u < D; u++) o[u] /= sum;
    } else {
      for (let u = 0; u < D; u++) o[u] = act64[name](o[u]);
    }
  }
  return out;
}

// BatchNormalization at inference and LayerNormalization, per row, in
// float64: (x - mean) / sqrt(variance + epsilon) * gamma + beta, with the
// moving statistics or the row's own (population variance).
function applyNormalization64(l, x, rows, D) {
  const out = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * D, (r + 1) * D);
    let mean = 0;
    let variance = 0;
    if (l.kind === 'layer_norm') {
      for (const v of row) mean += v;
      mean /= D;
      for (const v of row) variance += (v - mean) * (v - mean);
      variance /= D;
    }
    for (let j = 0; j < D; j++) {
      const m = l.kind === 'batch_norm' ? l.moving_mean[j] : mean;
      const v = l.kind === 'batch_norm' ? l.moving_variance[j] : variance;
      let y = (row[j] - m) / Math.sqrt(v + Math.fround(l.epsilon));
      if (l.gamma) y *= l.gamma[j];
      if (l.beta) y += l.beta[j];
      out[r * D + j] = y;
    }
  }
  return out;
}

// GlobalMaxPooling1D (every step: Keras ignores the mask) or
// GlobalAveragePooling1D (the unmasked steps only), in float64.
function applyPooling64(l, x, T, D, valid) {
  const out = new Float64Array(D);
  for (let j = 0; j < D; j++) {
    if (l.pooling === 'max') {
      let m = -Infinity;
      for (let t = 0; t < T; t++) m = Math.max(m, x[t * D + j]);
      out[j] = m;
    } else {
      let sum = 0;
      let count = 0;
      for (let t = 0; t < T; t++) {
        if (valid && !valid[t]) continue;
        sum += x[t * D + j];
        count++;
      }
      out[j] = sum / count;
    }
  }
  return out;
}

// Evaluates a normalized model on one sequence with a runner (runner64 or
// runnerOnnx). Masking (Embedding mask_zero, Masking) in two semantics:
// maskMode 'tfjs' (or none): a masked step outputs the carried h (tfjs' rnn()).
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
    if (l.kind === 'dropout') continue;
    if (l.kind === 'activation') {
      x = applyActivation64(l.activation, x, rows, inSize);
      continue;
    }
    if (l.kind === 'batch_norm' || l.kind === 'layer_norm') {
      x = applyNormalization64(l, x, rows, inSize);
      continue;
    }
    if (l.kind === 'pool') {
      x = applyPooling64(l, x, T, inSize, valid);
      seqMode = false;
      valid = null;
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

// Max abs difference between two results (output, forward, backward and
// states); throws when they differ in structure or shape.
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

// Max abs difference of evalReference(runner) from `expected` over all
// sequences; throws above TOLERANCE.
async function referenceDiff(what, model, sequences, expected, runner, maskMode) {
  let m = 0;
  for (let i = 0; i < sequences.length; i++) {
    m = Math.max(m, maxDiff(expected[i], await evalReference(model, sequences[i], runner, maskMode), what));
  }
  if (m > TOLERANCE) throw new Error(`${model.name}: ${what} differs by ${m}`);
  return m;
}

// The ONNX Runtime cross-check: {diff, check}, the max abs difference (null
// when ONNX's RNN operators lack one of the model's activations) and its
// cross_check text. `masked`: the sequences have masked steps, which ONNX
// Runtime skips (compactingRunner).
async function onnxCheck(model, sequences, expected, maskMode, masked) {
  const bis = model.layers.filter((l) => l.kind === 'bidirectional');
  if (!bis.every((l) => onnx.layerOnnxCompatible(l.forward) && onnx.layerOnnxCompatible(l.backward))) {
    const missing = new Set();
    for (const l of bis) {
      for (const d of [l.forward, l.backward]) {
        for (const a of [d.activation, d.recurrent_activation]) if (a && !onnx.onnxSupports(a)) missing.add(a);
      }
    }
    return { diff: null, check: `onnxruntime: not applicable (ONNX RNN operators have no ${[...missing].join(', ')})` };
  }
  onnx.usage.clear();
  const diff = await referenceDiff('onnxruntime', model, sequences, expected, runnerOnnx, maskMode);
  return {
    diff,
    check: `onnxruntime ${[...onnx.usage].join(' + ')}` + (masked ? ' on the unmasked steps' : '') +
      `, max abs diff ${fmtDiff(diff)}`,
  };
}

function fmtDiff(d) {
  return d === 0 ? '0' : d.toExponential(1);
}

// ---------------------------------------------------------------------------
// GoldenCase JSON.

function tensorJson(shape, values) {
  return { shape: shape.slice(), values: Float32Array.from(values) };
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

// A GoldenCase (golden_case.proto), fields in the proto's order, after the
// schema check. `model` (biserve's model JSON) is absent for tfjs_models/,
// whose model is the model.json next to it.
function goldenCase({ name, description, reference, checks, model, sequences, expected }) {
  const golden = { name, description, reference, cross_check: checks.join('; ') };
  if (model) golden.model = model;
  golden.sequences = sequences.map(sequenceJson);
  golden.expected = expected.map(resultJson);
  golden.tolerance = TOLERANCE;
  protoCheck.checkGoldenCase(plain(golden), name);
  return golden;
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

// What the two generators use.
module.exports = {
  TOLERANCE,
  hashString, makeRng, tfjsActivation,
  L, GRU, GRU0, S, SEQ, STATE, SEQ_STATE, bi, dense, UNBOUNDED_SCALE, selectCases,
  buildModel, makeSequences, rnnWeightShapes, rnnArrays, layerArraysAndShapes, usesKerasEquations,
  tfjsRnnLayer, setAndCheckWeights, buildStandalone, squeezeBatch, evalTfjsLayers,
  runner64, evalReference, maxDiff, referenceDiff, onnxCheck, fmtDiff,
  tensorJson, stringify, goldenCase,
  PyFloat, pyJsonDumps,
};
