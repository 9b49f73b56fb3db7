'use strict';
// Writes tfjs_models/<case>/: TensorFlow.js Layers-format models (model.json +
// weight files, exactly as the real tools write them) for biserve_convert's
// importer, with the outputs each sequence must give.
//
//   cd tests/golden && npm ci && node generate_tfjs_models.js [CASE...]
//
// Two flavours of model.json:
// - "tfjs": built with TensorFlow.js Layers and saved by model.save() through
//   tf.io.withSaveHandler, then written the way tfjs-node's file:// handler
//   writes them (model.json + weights.bin). expected.json holds what
//   TensorFlow.js computes (model.predict, batch of one).
// - "keras": what `tensorflowjs_converter --input_format=keras` writes for a
//   Keras 2.15 model saved as HDF5 (model.json + group1-shardNofM.bin),
//   written by hand here. expected.json holds the Keras-equations reference
//   (tfjs layers plus the GRU reset_after=True cell and Keras'
//   Bidirectional.call composition, with Keras' masking semantics).
// Negative cases (bad_*) hold a model the importer must reject and
// expected_error.txt: one line of text the error message must contain.
//
// Each case runs in its own Node process, so TensorFlow.js' automatic layer
// names (bidirectional_Bidirectional1, ...) are those of a fresh program and do
// not depend on the other cases. Weights, inputs and states come from a seeded
// PRNG (one stream per case, seeded from its name); the output is
// byte-identical on rerun.

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const TOLERANCE = 1e-5;
const OUT_DIR = path.join(__dirname, 'tfjs_models');

// ---------------------------------------------------------------------------
// The cases (plain data; see buildModel for the layer fields).

const L = (units, o = {}) => Object.assign({ cell: 'lstm', units }, o);
const GRU = (units, o = {}) => Object.assign({ cell: 'gru', units, reset_after: true }, o);
const GRU0 = (units, o = {}) => Object.assign({ cell: 'gru', units, reset_after: false }, o);
const S = (units, o = {}) => Object.assign({ cell: 'simple_rnn', units }, o);
const SEQ = { return_sequences: true };
const SEQ_STATE = { return_sequences: true, return_state: true };
const bi = (forward, merge_mode = 'concat', extra = {}) =>
  Object.assign({ type: 'bidirectional', forward, merge_mode }, extra);
const dense = (units, activation, o = {}) => Object.assign({ type: 'dense', units, activation }, o);
const td = (units, activation) => dense(units, activation, { time_distributed: true });
const emb = (vocab, dim, mask_zero = false) => ({ type: 'embedding', vocab, dim, mask_zero });
const masking = () => ({ type: 'masking' });
const UNBOUNDED_SCALE = { recurrent: 1 };

const MASK_PATTERN_4 = [[3, 4, 7, 8], [], [0, 10, 11, 12, 20, 21, 22], [2, 5]];

const CASES = [
  // ---- TensorFlow.js' own save format.
  {
    name: 'tfjs_lstm_concat_seq_td_softmax', flavour: 'tfjs', input_dim: 5,
    description: 'Sequential: Bidirectional(LSTM 8 tanh/sigmoid, return_sequences), concat -> ' +
      'TimeDistributed(Dense 4 softmax)',
    layers: [bi(L(8, SEQ)), td(4, 'softmax')], lengths: [7, 1, 23, 3],
  },
  {
    name: 'tfjs_gru_softsign_sum_last_dense_sigmoid', flavour: 'tfjs', input_dim: 4,
    description: 'Sequential: Bidirectional(GRU 6 reset_after=False (tfjs\' only GRU), activation softsign, ' +
      'recurrent_activation hard_sigmoid), sum -> Dense 3 sigmoid',
    layers: [bi(GRU0(6, { activation: 'softsign', recurrent_activation: 'hard_sigmoid' }), 'sum'),
      dense(3, 'sigmoid')],
    lengths: [12, 2, 31],
  },
  {
    name: 'tfjs_simple_rnn_relu_ave_seq', flavour: 'tfjs', input_dim: 3,
    description: 'Sequential: Bidirectional(SimpleRNN 6 relu, return_sequences), ave',
    layers: [bi(S(6, { activation: 'relu', return_sequences: true }), 'ave')], lengths: [5, 17, 1, 9],
    scale: UNBOUNDED_SCALE,
  },
  {
    name: 'tfjs_lstm_elu_mul_seq', flavour: 'tfjs', input_dim: 3,
    description: 'Sequential: Bidirectional(LSTM 6 elu, return_sequences), mul',
    layers: [bi(L(6, { activation: 'elu', return_sequences: true }), 'mul')], lengths: [4, 11, 2],
  },
  {
    name: 'tfjs_lstm_swish_none_seq', flavour: 'tfjs', input_dim: 3, functional: true,
    description: 'Functional (tf.model): Bidirectional(LSTM 5 swish, return_sequences), merge_mode null: ' +
      'two outputs, forward then backward',
    layers: [bi(L(5, { activation: 'swish', return_sequences: true }), 'none')], lengths: [6, 1, 14],
  },
  {
    name: 'tfjs_stack_lstm_gru_selu_dense_linear', flavour: 'tfjs', input_dim: 4,
    description: 'Sequential: Bidirectional(LSTM 6, return_sequences), concat -> Bidirectional(GRU 4 ' +
      'reset_after=False selu, return_sequences), ave -> Dense 3 linear (plain Dense on the 3D output)',
    layers: [bi(L(6, SEQ)), bi(GRU0(4, { activation: 'selu', return_sequences: true }), 'ave'), dense(3, 'linear')],
    lengths: [8, 3, 19],
  },
  {
    name: 'tfjs_embedding_gru_softplus_concat_last', flavour: 'tfjs', input_dim: 0,
    description: 'Sequential: Embedding(30, 6) -> Bidirectional(GRU 5 reset_after=False softplus), concat; ' +
      'token ids in [0, 30), 0 included (no masking)',
    layers: [emb(30, 6), bi(GRU0(5, { activation: 'softplus' }))], lengths: [10, 3, 27, 1],
  },
  {
    name: 'tfjs_embedding_mask_zero_lstm_concat_seq', flavour: 'tfjs', input_dim: 0,
    description: 'Sequential: Embedding(20, 6, mask_zero=true) -> Bidirectional(LSTM 5, return_sequences), concat',
    layers: [emb(20, 6, true), bi(L(5, SEQ))], lengths: [9, 1, 23, 6], masked: MASK_PATTERN_4,
  },
  {
    name: 'tfjs_masking_gru_last_dense_relu', flavour: 'tfjs', input_dim: 4,
    description: 'Sequential: Masking(mask_value=0) -> Bidirectional(GRU 6 reset_after=False), concat -> ' +
      'Dense 3 relu',
    layers: [masking(), bi(GRU0(6)), dense(3, 'relu')], lengths: [10, 4, 25],
    masked: [[2, 3, 8, 9], [3], [0, 1, 12, 22, 23, 24]],
  },
  {
    name: 'tfjs_masking_simple_rnn_none_seq_state', flavour: 'tfjs', input_dim: 3, functional: true,
    description: 'Functional: Masking(mask_value=0) -> Bidirectional(SimpleRNN 5, return_sequences, ' +
      'return_state), merge_mode null; outputs forward, backward, forward h, backward h',
    layers: [masking(), bi(S(5, SEQ_STATE), 'none')], lengths: [8, 2, 15],
    masked: [[2, 6, 7], [], [0, 5, 6, 13, 14]],
  },
  {
    name: 'tfjs_initial_state_lstm_seq_state_td_tanh', flavour: 'tfjs', input_dim: 3, functional: true,
    initial_state: true,
    description: 'Functional: inputs x and four initial states (forward h, forward c, backward h, backward c) ' +
      '-> Bidirectional(LSTM 6, return_sequences, return_state), concat, with initialState -> ' +
      'TimeDistributed(Dense 3 tanh); outputs the head and the four final states',
    layers: [bi(L(6, SEQ_STATE)), td(3, 'tanh')], lengths: [6, 15, 1],
  },
  {
    name: 'tfjs_gru_linear_go_backwards_concat_seq', flavour: 'tfjs', input_dim: 3,
    description: 'Sequential: Bidirectional(GRU 6 reset_after=False linear, go_backwards=true, ' +
      'return_sequences), concat; the wrapped (forward) layer runs backwards, its copy forwards',
    layers: [bi(GRU0(6, { activation: 'linear', go_backwards: true, return_sequences: true }))],
    lengths: [5, 13, 2], scale: UNBOUNDED_SCALE,
  },
  {
    name: 'tfjs_lstm_no_bias_hard_sigmoid_sum_last', flavour: 'tfjs', input_dim: 4,
    description: 'Sequential: Bidirectional(LSTM 6, use_bias=false, recurrent_activation hard_sigmoid), sum',
    layers: [bi(L(6, { use_bias: false, recurrent_activation: 'hard_sigmoid' }), 'sum')], lengths: [9, 1, 33],
  },

  // ---- tensorflowjs_converter --input_format=keras (Keras 2.15).
  {
    name: 'keras_gru_reset_after_concat_seq_td_softmax', flavour: 'keras', input_dim: 5,
    description: 'Sequential: Bidirectional(GRU 6 reset_after=True, return_sequences, input_shape=(None, 5)), ' +
      'concat -> TimeDistributed(Dense 4 softmax); compiled, so modelTopology has a training_config',
    layers: [bi(GRU(6, SEQ)), td(4, 'softmax')], lengths: [7, 1, 26, 3],
    keras: { trainingConfig: true },
  },
  {
    name: 'keras_lstm_backward_layer_relu_concat_seq', flavour: 'keras', input_dim: 3,
    description: 'Sequential: Input(shape=(None, 3)) -> Bidirectional(LSTM 6 tanh, return_sequences, ' +
      'backward_layer=LSTM 6 relu), concat; the backward layer is named lstm_1, its weights ' +
      'bidirectional/backward_lstm_1/lstm_cell/*',
    layers: [bi(L(6, SEQ), 'concat', { backward: L(6, { activation: 'relu' }) })], lengths: [9, 2, 18],
    keras: { inputLayer: true },
  },
  {
    name: 'keras_lstm_backward_layer_gru_concat_seq', flavour: 'keras', input_dim: 4,
    description: 'Sequential: Bidirectional(LSTM 6, return_sequences, backward_layer=GRU 4 reset_after=True), ' +
      'concat (output 10 wide)',
    layers: [bi(L(6, SEQ), 'concat', { backward: GRU(4) })], lengths: [5, 21, 1],
  },
  {
    name: 'keras_functional_initial_state_lstm_seq_state_td_sigmoid', flavour: 'keras', input_dim: 3,
    functional: true, initial_state: true,
    description: 'Functional: inputs input_1 (x) and input_2..input_5 (forward h, forward c, backward h, ' +
      'backward c) -> Bidirectional(LSTM 5, return_sequences, return_state), concat, called with ' +
      'initial_state -> TimeDistributed(Dense 3 sigmoid); outputs the head and the four final states',
    layers: [bi(L(5, SEQ_STATE)), td(3, 'sigmoid')], lengths: [6, 15, 2],
  },
  {
    name: 'keras_embedding_mask_zero_gru_reset_after_concat_seq', flavour: 'keras', input_dim: 0,
    description: 'Sequential: Embedding(25, 6, mask_zero=True) -> Bidirectional(GRU 5 reset_after=True, ' +
      'return_sequences), concat. Keras semantics: Bidirectional sets zero_output_for_mask on both ' +
      'directions, so every masked step outputs 0 (TensorFlow.js would carry the last h instead)',
    layers: [emb(25, 6, true), bi(GRU(5, SEQ))], lengths: [9, 1, 23, 6], masked: MASK_PATTERN_4,
  },
  {
    name: 'keras_lstm_unroll_constraint_dropout_sum_last_dense', flavour: 'keras', input_dim: 4,
    description: 'Sequential: Input(shape=(6, 4)) -> Bidirectional(LSTM 5, unroll=True, dropout=0.2, ' +
      'recurrent_dropout=0.1, kernel_constraint=MaxNorm(2.0)), sum -> Dense 2 linear. unroll, dropout and ' +
      'constraints do not change inference; unroll needs a fixed time dimension in Keras, so every ' +
      'sequence has 6 steps',
    layers: [bi(L(5, {
      keras: {
        unroll: true, dropout: 0.2, recurrent_dropout: 0.1,
        kernel_constraint: { class_name: 'MaxNorm', config: { max_value: 2.0, axis: 0 } },
      },
    }), 'sum'), dense(2, 'linear')],
    lengths: [6, 6, 6], keras: { inputLayer: true, fixedTime: 6 },
  },
  {
    name: 'keras_stack_lstm_simple_rnn_dense_softmax_sharded', flavour: 'keras', input_dim: 8,
    description: 'Sequential: Bidirectional(LSTM 16, return_sequences), concat -> Bidirectional(SimpleRNN 8), ' +
      'concat -> Dense 5 softmax; converted with --weight_shard_size_bytes 4096, so the weights span ' +
      'four shard files and tensors cross shard boundaries',
    layers: [bi(L(16, SEQ)), bi(S(8)), dense(5, 'softmax')], lengths: [11, 2, 30],
    keras: { shardBytes: 4096 },
  },

  // ---- Models the importer must reject (converter flavour).
  {
    name: 'bad_stateful', flavour: 'keras', input_dim: 3, negative: true,
    description: 'Bidirectional(LSTM 4, stateful=True) with Input(batch_shape=(2, None, 3)): biserve keeps ' +
      'no state between requests',
    layers: [bi(L(4, { keras: { stateful: true } }))], keras: { inputLayer: true, batchSize: 2 },
    expectedError: 'stateful',
  },
  {
    name: 'bad_conv1d', flavour: 'keras', input_dim: 4, negative: true,
    description: 'Conv1D(6, 3, padding="same", relu) -> Bidirectional(LSTM 4) -> Dense 2 softmax: Conv1D ' +
      'is not supported',
    layers: [{ type: 'conv1d', filters: 6, kernel_size: 3 }, bi(L(4)), dense(2, 'softmax')],
    expectedError: 'Conv1D',
  },
  {
    name: 'bad_time_major', flavour: 'keras', input_dim: 3, negative: true,
    description: 'Bidirectional(LSTM 4, time_major=True): inputs would be [time, batch, features]',
    layers: [bi(L(4, { keras: { time_major: true } }))],
    expectedError: 'time_major',
  },
  {
    name: 'bad_missing_weight', flavour: 'keras', input_dim: 3, negative: true,
    description: 'Bidirectional(LSTM 4), concat -> Dense 2; the manifest (and the shard) lack ' +
      'bidirectional/backward_lstm/lstm_cell/recurrent_kernel',
    layers: [bi(L(4)), dense(2, 'linear')],
    dropWeight: 'bidirectional/backward_lstm/lstm_cell/recurrent_kernel',
    expectedError: 'recurrent_kernel',
  },
  {
    name: 'bad_short_shard', flavour: 'keras', input_dim: 3, negative: true,
    description: 'Bidirectional(LSTM 4), concat -> Dense 2; group1-shard1of1.bin is 64 bytes shorter than ' +
      'the manifest needs',
    layers: [bi(L(4)), dense(2, 'linear')], truncateBytes: 64,
    expectedError: 'group1-shard1of1.bin',
  },
];

// ---------------------------------------------------------------------------
// Parent: one child process per case.

function listCaseFiles(dir) {
  return fs.readdirSync(dir).sort().map((f) => ({ f, size: fs.statSync(path.join(dir, f)).size }));
}

function parent(only) {
  const names = new Set();
  for (const c of CASES) {
    if (names.has(c.name)) throw new Error('duplicate case ' + c.name);
    names.add(c.name);
  }
  for (const n of only) if (!names.has(n)) throw new Error('unknown case ' + n);
  const selected = only.length ? CASES.filter((c) => only.includes(c.name)) : CASES;
  fs.mkdirSync(OUT_DIR, { recursive: true });
  if (!only.length) {
    for (const f of fs.readdirSync(OUT_DIR)) {
      const p = path.join(OUT_DIR, f);
      if (fs.statSync(p).isDirectory()) fs.rmSync(p, { recursive: true });
    }
  }
  let total = 0;
  for (const c of selected) {
    const dir = path.join(OUT_DIR, c.name);
    fs.rmSync(dir, { recursive: true, force: true });
    // The child's stderr (tfjs' banner and its notices about unroll and
    // initialState kwargs) is shown only when the case fails.
    let out;
    try {
      out = execFileSync(process.execPath, [__filename, '--child', c.name],
        { cwd: __dirname, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    } catch (e) {
      process.stderr.write(e.stderr || '');
      throw new Error(c.name + ' failed');
    }
    const line = out.split('\n').find((l) => l.startsWith('SUMMARY '));
    if (!line) throw new Error(c.name + ': child printed no summary');
    const s = JSON.parse(line.slice(8));
    const files = listCaseFiles(dir);
    const bytes = files.reduce((a, x) => a + x.size, 0);
    total += bytes;
    console.log([c.name.padEnd(56), (bytes / 1024).toFixed(1).padStart(5) + ' KiB', s.checks].join('  '));
  }
  if (!only.length) total += fs.existsSync(path.join(OUT_DIR, 'README.md')) ?
    fs.statSync(path.join(OUT_DIR, 'README.md')).size : 0;
  console.log(`${selected.length} cases, ${(total / 1024 / 1024).toFixed(2)} MiB`);
}

// ---------------------------------------------------------------------------
// Child: everything below runs in the case's own process.

let tf;
let kr;
let onnx;
let protoCheck;

function loadLibs() {
  tf = require('@tensorflow/tfjs');
  kr = require('./keras_reference');
  onnx = require('./onnx_reference');
  protoCheck = require('./proto_check');
}

const GATES = { simple_rnn: 1, lstm: 4, gru: 3 };
const DEFAULT_SCALE = { kernel: 2, recurrent: 2, bias: 0.5, dense: 4 };

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

function makeRnnWeights(rng, layer, inputSize, scale) {
  const G = GATES[layer.cell];
  const H = layer.units;
  const w = {
    kernel: kr.randomF32(rng, inputSize * G * H, scale.kernel / Math.sqrt(inputSize)),
    recurrent_kernel: kr.randomF32(rng, H * G * H, scale.recurrent / Math.sqrt(H)),
    bias: null,
  };
  if (layer.use_bias) {
    const rows = layer.cell === 'gru' && layer.reset_after ? 2 : 1;
    w.bias = kr.randomF32(rng, rows * G * H, scale.bias);
  }
  return w;
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

// The normalized model: plain objects, Keras snake_case options, Float32Array
// weights in Keras layouts.
function buildModel(spec, rng) {
  const model = { name: spec.name, input_dim: spec.input_dim, layers: [] };
  const scale = Object.assign({}, DEFAULT_SCALE, spec.scale);
  let featureSize = spec.input_dim;
  let sequenceOut = true;
  spec.layers.forEach((ls, index) => {
    if (ls.type === 'embedding') {
      if (index !== 0 || spec.input_dim !== 0) throw new Error('embedding must come first with input_dim 0');
      model.layers.push({
        kind: 'embedding', vocab: ls.vocab, dim: ls.dim, mask_zero: !!ls.mask_zero,
        embeddings: kr.randomF32(rng, ls.vocab * ls.dim, 1),
      });
      featureSize = ls.dim;
    } else if (ls.type === 'masking') {
      model.layers.push({ kind: 'masking', mask_value: 0 });
    } else if (ls.type === 'conv1d') {
      const c = { kind: 'conv1d', filters: ls.filters, kernel_size: ls.kernel_size, inputSize: featureSize };
      c.kernel = kr.randomF32(rng, ls.kernel_size * featureSize * ls.filters, 1 / Math.sqrt(featureSize));
      c.bias = kr.randomF32(rng, ls.filters, scale.bias);
      model.layers.push(c);
      featureSize = ls.filters;
    } else if (ls.type === 'bidirectional') {
      if (!sequenceOut) throw new Error('a Bidirectional layer needs sequences from the layer before');
      const fwd = rnnDefaults(ls.forward);
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
      } else {
        bwd = Object.assign({}, fwd, { go_backwards: !fwd.go_backwards });
      }
      bwd.inputSize = featureSize;
      bwd.weights = makeRnnWeights(rng, bwd, featureSize, scale);
      const merge = ls.merge_mode || 'concat';
      model.layers.push({ kind: 'bidirectional', forward: fwd, backward: bwd, explicitBackward: explicit, merge_mode: merge });
      if (merge === 'none' && index !== spec.layers.length - 1) throw new Error('merge none must be last');
      featureSize = merge === 'concat' ? fwd.units + bwd.units : fwd.units;
      if (merge !== 'concat' && fwd.units !== bwd.units) throw new Error('merge needs equal units');
      sequenceOut = fwd.return_sequences;
    } else if (ls.type === 'dense') {
      const d = {
        kind: 'dense', units: ls.units, activation: ls.activation || 'linear', use_bias: ls.use_bias !== false,
        time_distributed: !!ls.time_distributed, inputSize: featureSize,
      };
      d.kernel = kr.randomF32(rng, featureSize * ls.units, scale.dense / Math.sqrt(featureSize));
      d.bias = d.use_bias ? kr.randomF32(rng, ls.units, scale.bias) : null;
      model.layers.push(d);
      featureSize = ls.units;
    } else {
      throw new Error('bad layer type ' + ls.type);
    }
  });
  return model;
}

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
      s.features = kr.randomF32(rng, T * spec.input_dim, 1);
      for (const t of masked) s.features.fill(0, t * spec.input_dim, (t + 1) * spec.input_dim);
    }
    if (spec.initial_state) {
      s.initial_state = [];
      for (const dir of [firstBi.forward, firstBi.backward]) {
        s.initial_state.push(kr.randomF32(rng, dir.units, 0.5));
        if (dir.cell === 'lstm') s.initial_state.push(kr.randomF32(rng, dir.units, 1));
      }
    }
    return s;
  });
}

// ---------------------------------------------------------------------------
// TensorFlow.js layers.

function tfjsRnnLayer(layer, useKerasGru) {
  const common = {
    units: layer.units,
    activation: kr.tfjsActivation(layer.activation),
    useBias: layer.use_bias,
    goBackwards: layer.go_backwards,
    returnSequences: layer.return_sequences,
    returnState: layer.return_state,
  };
  if (layer.cell === 'simple_rnn') return tf.layers.simpleRNN(common);
  // tfjs defaults recurrentActivation to hardSigmoid (Keras: sigmoid), so it
  // is always passed explicitly.
  common.recurrentActivation = kr.tfjsActivation(layer.recurrent_activation);
  if (layer.cell === 'lstm') return tf.layers.lstm(common);
  if (!layer.reset_after) return tf.layers.gru(common);
  if (!useKerasGru) throw new Error('tfjs has no GRU with reset_after=True');
  return new kr.KerasGRU(Object.assign(common, { recurrentActivation: common.recurrentActivation }));
}

function weightTensors(layer) {
  return rnnArrays(layer).map((a, i) => tf.tensor(a, rnnWeightShapes(layer)[i]));
}

function sameArray(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Sets weights on a built tfjs layer and checks that getWeights() returns them
// in the same order and shapes.
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
  return [[], []];
}

// The real tfjs model of a tfjs-flavoured case (default tfjs names,
// initializers and options, as a tfjs user writes it).
function buildTfjsModel(spec, model) {
  const made = [];
  const make = (l, first) => {
    const extra = first ? { inputShape: model.input_dim ? [null, model.input_dim] : [null] } : {};
    let layer;
    if (l.kind === 'embedding') {
      layer = tf.layers.embedding(Object.assign({ inputDim: l.vocab, outputDim: l.dim, maskZero: l.mask_zero }, extra));
    } else if (l.kind === 'masking') {
      layer = tf.layers.masking(Object.assign({ maskValue: l.mask_value }, extra));
    } else if (l.kind === 'dense') {
      const d = { units: l.units, activation: kr.tfjsActivation(l.activation), useBias: l.use_bias };
      layer = l.time_distributed ?
        tf.layers.timeDistributed(Object.assign({ layer: tf.layers.dense(d) }, extra)) :
        tf.layers.dense(Object.assign(d, extra));
    } else if (l.kind === 'bidirectional') {
      if (l.explicitBackward) throw new Error('tfjs has no backward_layer');
      layer = tf.layers.bidirectional(Object.assign({
        layer: tfjsRnnLayer(l.forward, false),
        mergeMode: l.merge_mode === 'none' ? null : l.merge_mode,
      }, extra));
    } else {
      throw new Error('cannot build ' + l.kind + ' in tfjs');
    }
    made.push({ l, layer });
    return layer;
  };
  let tfModel;
  if (!spec.functional) {
    tfModel = tf.sequential();
    model.layers.forEach((l, i) => tfModel.add(make(l, i === 0)));
  } else {
    const x = tf.input({ shape: model.input_dim ? [null, model.input_dim] : [null] });
    const inputs = [x];
    const firstBi = model.layers.find((l) => l.kind === 'bidirectional');
    let stateInputs = null;
    if (spec.initial_state) {
      stateInputs = [];
      for (const d of [firstBi.forward, firstBi.backward]) {
        for (let k = 0; k < (d.cell === 'lstm' ? 2 : 1); k++) stateInputs.push(tf.input({ shape: [d.units] }));
      }
      inputs.push(...stateInputs);
    }
    let h = x;
    let outputs = null;
    let stateOutputs = [];
    model.layers.forEach((l) => {
      const layer = make(l, false);
      if (l.kind !== 'bidirectional') {
        h = layer.apply(h);
        return;
      }
      const useInit = l === firstBi && stateInputs;
      let out = useInit ? layer.apply(h, { initialState: stateInputs }) : layer.apply(h);
      if (!Array.isArray(out)) out = [out];
      if (l.merge_mode === 'none') {
        outputs = out;
        h = null;
      } else {
        h = out[0];
        stateOutputs = out.slice(1);
      }
    });
    if (!outputs) outputs = [h].concat(stateOutputs);
    tfModel = tf.model({ inputs: inputs.length === 1 ? x : inputs, outputs: outputs.length === 1 ? outputs[0] : outputs });
  }
  for (const { l, layer } of made) {
    const [arrays, shapes] = layerArraysAndShapes(l);
    if (arrays.length) setAndCheckWeights(layer, arrays, shapes);
  }
  return tfModel;
}

function squeezeBatch(t) {
  if (t.shape[0] !== 1) throw new Error('expected batch 1');
  return { shape: t.shape.slice(1), values: Float32Array.from(t.dataSync()) };
}

function lastBi(model) {
  const bis = model.layers.filter((l) => l.kind === 'bidirectional');
  return bis[bis.length - 1];
}

// model.predict on one sequence (batch of one), outputs mapped to a result.
function predictTfjs(tfModel, model, seq) {
  return tf.tidy(() => {
    const T = seq.length;
    const x = seq.token_ids ? tf.tensor2d(seq.token_ids, [1, T], 'int32') :
      tf.tensor3d(seq.features, [1, T, model.input_dim]);
    const feed = seq.initial_state ? [x].concat(seq.initial_state.map((s) => tf.tensor2d(s, [1, s.length]))) : x;
    let out = tfModel.predict(feed);
    if (!Array.isArray(out)) out = [out];
    const bl = lastBi(model);
    const result = { output: null, forward: null, backward: null, states: [] };
    if (bl.merge_mode === 'none') {
      result.forward = squeezeBatch(out[0]);
      result.backward = squeezeBatch(out[1]);
      result.states = out.slice(2).map(squeezeBatch);
    } else {
      result.output = squeezeBatch(out[0]);
      result.states = out.slice(1).map(squeezeBatch);
    }
    return result;
  });
}

// Standalone tfjs layers for composeEval: each Bidirectional becomes two tfjs
// RNN layers (the GRU reset_after=True one is KerasGRU).
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
        units: l.units, activation: kr.tfjsActivation(l.activation), useBias: l.use_bias,
        kernelInitializer: 'zeros', biasInitializer: 'zeros',
      });
      tf.tidy(() => layer.apply(tf.zeros([1, l.inputSize])));
      setAndCheckWeights(layer, ...layerArraysAndShapes(l));
      return { layer };
    }
    const pair = {};
    for (const [key, nl] of [['forward', l.forward], ['backward', l.backward]]) {
      const tl = tfjsRnnLayer(nl, true);
      tf.tidy(() => { tl.apply(tf.zeros([1, 1, nl.inputSize])); });
      setAndCheckWeights(tl, rnnArrays(nl), rnnWeightShapes(nl));
      pair[key] = tl;
    }
    return pair;
  });
}

// Keras' Bidirectional.call on standalone tfjs layers, with masks:
//   y = forward(x, mask); y_rev = backward(x, mask)
//   maskMode 'keras' and return_sequences: masked steps of y and y_rev are 0
//     (Keras 2 sets zero_output_for_mask = return_sequences on both layers);
//   maskMode 'tfjs': masked steps keep tfjs' rnn() output (the carried h);
//   y_rev flipped in time when return_sequences; merged; states appended.
function composeEval(model, built, seq, maskMode) {
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
      if (l.kind === 'dense') {
        x = b.layer.apply(x);
        return;
      }
      const f = l.forward;
      let fState = null;
      let bState = null;
      if (firstBi && seq.initial_state) {
        const st = seq.initial_state.map((s) => tf.tensor2d(s, [1, s.length]));
        const nf = f.cell === 'lstm' ? 2 : 1;
        fState = st.slice(0, nf);
        bState = st.slice(nf);
      }
      firstBi = false;
      const maskT = mask ? tf.tensor2d(mask, [1, T]) : null;
      const kw = (st) => {
        const k = {};
        if (maskT) k.mask = maskT;
        if (st) k.initialState = st;
        return k;
      };
      let y = b.forward.apply(x, kw(fState));
      let yRev = b.backward.apply(x, kw(bState));
      let states = [];
      if (f.return_state) {
        states = y.slice(1).concat(yRev.slice(1));
        y = y[0];
        yRev = yRev[0];
      }
      if (f.return_sequences && mask && maskMode === 'keras') {
        const proc = (layer) => tf.tensor3d(layer.go_backwards ? mask.slice().reverse() : mask, [1, T, 1]);
        y = tf.mul(y, proc(l.forward));
        yRev = tf.mul(yRev, proc(l.backward));
      }
      if (f.return_sequences) yRev = tf.reverse(yRev, 1);
      result.states = states.map(squeezeBatch);
      if (l.merge_mode === 'none') {
        result.forward = squeezeBatch(y);
        result.backward = squeezeBatch(yRev);
        x = null;
      } else {
        if (l.merge_mode === 'concat') x = tf.concat([y, yRev], -1);
        else if (l.merge_mode === 'sum') x = tf.add(y, yRev);
        else if (l.merge_mode === 'ave') x = tf.mul(0.5, tf.add(y, yRev));
        else if (l.merge_mode === 'mul') x = tf.mul(y, yRev);
        else throw new Error('bad merge mode ' + l.merge_mode);
      }
      if (!f.return_sequences) mask = null;
    });
    if (x) result.output = squeezeBatch(x);
    return result;
  });
}

// ---------------------------------------------------------------------------
// Keras 2.15 + tensorflowjs converter model.json, written by hand.

const F = (v) => new kr.PyFloat(v);
const kobj = (module, cls, config) => ({ module, class_name: cls, config, registered_name: null });
const INIT = {
  glorot: () => kobj('keras.initializers', 'GlorotUniform', { seed: null }),
  orthogonal: () => kobj('keras.initializers', 'Orthogonal', { gain: F(1), seed: null }),
  zeros: () => kobj('keras.initializers', 'Zeros', {}),
  embedding: () => kobj('keras.initializers', 'RandomUniform', { minval: F(-0.05), maxval: F(0.05), seed: null }),
};
const CELL_NAME = { lstm: 'lstm_cell', gru: 'gru_cell', simple_rnn: 'simple_rnn_cell' };
const CELL_CLASS = { lstm: 'LSTM', gru: 'GRU', simple_rnn: 'SimpleRNN' };

// Keras' unique layer names: lstm, lstm_1, ... per snake_case class name.
function makeNamer() {
  const counts = {};
  return (prefix) => {
    const n = counts[prefix] || 0;
    counts[prefix] = n + 1;
    return n ? `${prefix}_${n}` : prefix;
  };
}

function baseConfig(name, batchInputShape) {
  const c = { name, trainable: true, dtype: 'float32' };
  if (batchInputShape) c.batch_input_shape = batchInputShape;
  return c;
}

function constraintJson(c) {
  if (!c) return null;
  const config = {};
  for (const k of Object.keys(c.config)) config[k] = k === 'max_value' ? F(c.config[k]) : c.config[k];
  return kobj('keras.constraints', c.class_name, config);
}

// tf_keras LSTM/GRU/SimpleRNN.get_config(): the base layer's keys, RNN's,
// then the cell's options.
function kerasRnnConfig(l, name) {
  const k = Object.assign({
    stateful: false, unroll: false, time_major: false, dropout: 0, recurrent_dropout: 0,
    kernel_constraint: null, recurrent_constraint: null, bias_constraint: null,
  }, l.keras);
  const c = baseConfig(name);
  Object.assign(c, {
    return_sequences: l.return_sequences, return_state: l.return_state, go_backwards: l.go_backwards,
    stateful: k.stateful, unroll: k.unroll, time_major: k.time_major,
    units: l.units, activation: l.activation,
  });
  if (l.cell !== 'simple_rnn') c.recurrent_activation = l.recurrent_activation;
  c.use_bias = l.use_bias;
  c.kernel_initializer = INIT.glorot();
  c.recurrent_initializer = INIT.orthogonal();
  c.bias_initializer = INIT.zeros();
  if (l.cell === 'lstm') c.unit_forget_bias = true;
  Object.assign(c, {
    kernel_regularizer: null, recurrent_regularizer: null, bias_regularizer: null, activity_regularizer: null,
    kernel_constraint: constraintJson(k.kernel_constraint),
    recurrent_constraint: constraintJson(k.recurrent_constraint),
    bias_constraint: constraintJson(k.bias_constraint),
    dropout: F(k.dropout), recurrent_dropout: F(k.recurrent_dropout),
  });
  if (l.cell !== 'simple_rnn') c.implementation = 2;
  if (l.cell === 'gru') c.reset_after = l.reset_after;
  return c;
}

function kerasDenseConfig(l, name, batchInputShape) {
  return Object.assign(baseConfig(name, batchInputShape), {
    units: l.units, activation: l.activation, use_bias: l.use_bias,
    kernel_initializer: INIT.glorot(), bias_initializer: INIT.zeros(),
    kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
    kernel_constraint: null, bias_constraint: null,
  });
}

// Returns {topology (modelTopology), weights: [{name, shape, data}] in the
// converter's order}.
function kerasModel(spec, model) {
  const name = makeNamer();
  const ks = spec.keras || {};
  const T = ks.fixedTime || null;
  const batch = ks.batchSize || null;
  const inputShape = model.input_dim ? [batch, T, model.input_dim] : [batch, null];
  const entries = [];   // {class_name, config, name, weightsByLayer}
  const layerWeights = {};  // top-level layer name -> [{name, shape, data}]
  const addW = (layerName, wname, shape, data) => {
    (layerWeights[layerName] = layerWeights[layerName] || []).push({ name: wname, shape, data });
  };
  const firstNeedsShape = !spec.functional && !ks.inputLayer;
  model.layers.forEach((l, i) => {
    const bis = i === 0 && firstNeedsShape ? inputShape : null;
    if (l.kind === 'embedding') {
      const n = name('embedding');
      // Keras' Embedding always sets input_shape (None,) when none is given.
      entries.push({
        class_name: 'Embedding', name: n,
        config: Object.assign(baseConfig(n, [batch, null]), {
          input_dim: l.vocab, output_dim: l.dim, embeddings_initializer: INIT.embedding(),
          embeddings_regularizer: null, activity_regularizer: null, embeddings_constraint: null,
          mask_zero: l.mask_zero, input_length: null,
        }),
      });
      addW(n, `${n}/embeddings`, [l.vocab, l.dim], l.embeddings);
    } else if (l.kind === 'masking') {
      const n = name('masking');
      entries.push({ class_name: 'Masking', name: n, config: Object.assign(baseConfig(n, bis), { mask_value: F(l.mask_value) }) });
    } else if (l.kind === 'conv1d') {
      const n = name('conv1d');
      entries.push({
        class_name: 'Conv1D', name: n,
        config: Object.assign(baseConfig(n, bis), {
          filters: l.filters, kernel_size: [l.kernel_size], strides: [1], padding: 'same',
          data_format: 'channels_last', dilation_rate: [1], groups: 1, activation: 'relu', use_bias: true,
          kernel_initializer: INIT.glorot(), bias_initializer: INIT.zeros(),
          kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
          kernel_constraint: null, bias_constraint: null,
        }),
      });
      addW(n, `${n}/kernel`, [l.kernel_size, l.inputSize, l.filters], l.kernel);
      addW(n, `${n}/bias`, [l.filters], l.bias);
    } else if (l.kind === 'bidirectional') {
      const fName = name(l.forward.cell);
      const bName = l.explicitBackward ? name(l.backward.cell) : fName;
      const n = name('bidirectional');
      const config = baseConfig(n, bis);
      config.layer = kobj('keras.layers', CELL_CLASS[l.forward.cell], kerasRnnConfig(l.forward, fName));
      config.merge_mode = l.merge_mode === 'none' ? null : l.merge_mode;
      if (l.explicitBackward) {
        config.backward_layer = kobj('keras.layers', CELL_CLASS[l.backward.cell], kerasRnnConfig(l.backward, bName));
      }
      entries.push({ class_name: 'Bidirectional', name: n, config, bi: l });
      for (const [dirName, lay, prefix] of [['forward', l.forward, fName], ['backward', l.backward, bName]]) {
        const scope = `${n}/${dirName}_${prefix}/${CELL_NAME[lay.cell]}`;
        const shapes = rnnWeightShapes(lay);
        rnnArrays(lay).forEach((a, k) => addW(n, `${scope}/${['kernel', 'recurrent_kernel', 'bias'][k]}`, shapes[k], a));
      }
    } else if (l.kind === 'dense') {
      const dn = name('dense');
      if (l.time_distributed) {
        const n = name('time_distributed');
        const config = baseConfig(n, bis);
        config.layer = kobj('keras.layers', 'Dense', kerasDenseConfig(l, dn));
        entries.push({ class_name: 'TimeDistributed', name: n, config });
        addW(n, `${n}/kernel`, [l.inputSize, l.units], l.kernel);
        if (l.use_bias) addW(n, `${n}/bias`, [l.units], l.bias);
      } else {
        entries.push({ class_name: 'Dense', name: dn, config: kerasDenseConfig(l, dn, bis) });
        addW(dn, `${dn}/kernel`, [l.inputSize, l.units], l.kernel);
        if (l.use_bias) addW(dn, `${dn}/bias`, [l.units], l.bias);
      }
    }
  });

  const inputLayer = (n, shape) => ({
    class_name: 'InputLayer',
    config: { batch_input_shape: shape, dtype: 'float32', sparse: false, ragged: false, name: n },
  });
  let modelConfig;
  if (!spec.functional) {
    const first = entries[0];
    // keras.Input() gives input_1; input_shape on the first layer gives
    // <layer>_input.
    const inName = ks.inputLayer ? 'input_1' : `${first.name}_input`;
    const layers = [inputLayer(inName, inputShape)]
      .concat(entries.map((e) => ({ class_name: e.class_name, config: e.config })));
    modelConfig = { class_name: 'Sequential', config: { name: 'sequential', layers } };
  } else {
    // keras.Input() names are one-based: input_1, input_2, ...
    const inputs = [{ name: 'input_1', shape: inputShape }];
    const firstBi = model.layers.find((l) => l.kind === 'bidirectional');
    if (spec.initial_state) {
      for (const d of [firstBi.forward, firstBi.backward]) {
        for (let k = 0; k < (d.cell === 'lstm' ? 2 : 1); k++) {
          inputs.push({ name: `input_${inputs.length + 1}`, shape: [null, d.units] });
        }
      }
    }
    const layers = inputs.map((inp) => Object.assign(inputLayer(inp.name, inp.shape), { name: inp.name, inbound_nodes: [] }));
    let prev = [['input_1', 0, 0]];
    let outputs = null;
    let stateOutputs = [];
    for (const e of entries) {
      let inbound;
      if (e.bi && e.bi === firstBi && spec.initial_state) {
        // Bidirectional.__call__ with Keras-tensor initial states calls the
        // layer on [x, *states] with initial_state=None, constants=None; the
        // node's kwargs are repeated on every inbound tensor.
        const kw = { initial_state: null, constants: null };
        inbound = [[prev[0].concat([kw])].concat(inputs.slice(1).map((inp) => [inp.name, 0, 0, kw]))];
      } else {
        inbound = [[prev[0].concat([{}])]];
      }
      layers.push({ class_name: e.class_name, config: e.config, name: e.name, inbound_nodes: inbound });
      if (e.bi) {
        const nOut = e.bi.merge_mode === 'none' ? 2 : 1;
        const nStates = e.bi.forward.return_state ?
          (e.bi.forward.cell === 'lstm' ? 2 : 1) + (e.bi.backward.cell === 'lstm' ? 2 : 1) : 0;
        const outs = [];
        for (let k = 0; k < nOut + nStates; k++) outs.push([e.name, 0, k]);
        if (nOut === 2) outputs = outs;
        stateOutputs = outs.slice(nOut);
        prev = outs.slice(0, 1);
      } else {
        prev = [[e.name, 0, 0]];
      }
    }
    if (!outputs) outputs = prev.concat(stateOutputs);
    modelConfig = {
      class_name: 'Functional',
      config: {
        name: 'model', trainable: true, layers,
        input_layers: inputs.map((inp) => [inp.name, 0, 0]),
        output_layers: outputs,
      },
    };
  }
  const topology = { keras_version: '2.15.0', backend: 'tensorflow', model_config: modelConfig };
  if (ks.trainingConfig) {
    // As Keras 2.15 writes it for model.compile(optimizer='adam',
    // loss='categorical_crossentropy').
    topology.training_config = {
      loss: 'categorical_crossentropy', metrics: null, weighted_metrics: null, loss_weights: null,
      optimizer_config: {
        class_name: 'Custom>Adam',
        config: {
          name: 'Adam', weight_decay: null, clipnorm: null, global_clipnorm: null, clipvalue: null,
          use_ema: false, ema_momentum: F(0.99), ema_overwrite_frequency: null, jit_compile: false,
          is_legacy_optimizer: false, learning_rate: F(0.0010000000474974513), beta_1: F(0.9),
          beta_2: F(0.999), epsilon: F(1e-7), amsgrad: false,
        },
      },
    };
  }
  // The converter reads the HDF5 file's model_weights group, whose layer
  // subgroups h5py lists by name; inside a layer, the layer's own weight order.
  const weights = [];
  for (const n of Object.keys(layerWeights).sort()) weights.push(...layerWeights[n]);
  return { topology, weights };
}

function writeKerasFiles(dir, spec, model) {
  const { topology, weights } = kerasModel(spec, model);
  let ws = weights;
  if (spec.dropWeight) {
    ws = weights.filter((w) => w.name !== spec.dropWeight);
    if (ws.length !== weights.length - 1) throw new Error('dropWeight matched nothing');
  }
  const bytes = Buffer.concat(ws.map((w) => {
    const n = w.shape.reduce((a, b) => a * b, 1);
    if (w.data.length !== n) throw new Error(`weight ${w.name}: ${w.data.length} values for shape ${w.shape}`);
    const b = Buffer.alloc(4 * n);
    for (let i = 0; i < n; i++) b.writeFloatLE(w.data[i], 4 * i);
    return b;
  }));
  const shardBytes = (spec.keras && spec.keras.shardBytes) || 4 * 1024 * 1024;
  const nShards = Math.ceil(bytes.length / shardBytes);
  const paths = [];
  for (let i = 0; i < nShards; i++) {
    const file = `group1-shard${i + 1}of${nShards}.bin`;
    let chunk = bytes.subarray(i * shardBytes, Math.min(bytes.length, (i + 1) * shardBytes));
    if (spec.truncateBytes && i === nShards - 1) chunk = chunk.subarray(0, chunk.length - spec.truncateBytes);
    fs.writeFileSync(path.join(dir, file), chunk);
    paths.push(file);
  }
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'keras v2.15.0',
    convertedBy: 'TensorFlow.js Converter v4.22.0',
    modelTopology: topology,
    weightsManifest: [{
      paths,
      weights: ws.map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' })),
    }],
  };
  const text = kr.pyJsonDumps(modelJson);
  fs.writeFileSync(path.join(dir, 'model.json'), text);
  return { text, bytes };
}

// ---------------------------------------------------------------------------
// tfjs-node's NodeFileSystem.save(), which tf.io.withSaveHandler hands the
// same artifacts: model.json (JSON.stringify, this key order) + weights.bin.

function writeTfjsFiles(dir, artifacts) {
  const weightsManifest = [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }];
  const modelJSON = {
    modelTopology: artifacts.modelTopology,
    weightsManifest,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
  };
  if (artifacts.trainingConfig != null) modelJSON.trainingConfig = artifacts.trainingConfig;
  if (artifacts.signature != null) modelJSON.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata != null) modelJSON.userDefinedMetadata = artifacts.userDefinedMetadata;
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJSON), 'utf8');
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(artifacts.weightData), 'binary');
}

// tf.loadLayersModel on the files as written (what tfjs-node's file:// loader
// hands to it).
async function loadWrittenModel(dir) {
  const j = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const bufs = [];
  const specs = [];
  for (const g of j.weightsManifest) {
    for (const p of g.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
    specs.push(...g.weights);
  }
  const all = Buffer.concat(bufs);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: j.modelTopology, weightSpecs: specs, weightData,
    format: j.format, generatedBy: j.generatedBy, convertedBy: j.convertedBy,
  }));
}

// ---------------------------------------------------------------------------
// GoldenCase JSON.

function resultJson(r) {
  const j = {};
  if (r.output) j.output = kr.tensorJson(r.output.shape, r.output.values);
  if (r.forward) j.forward = kr.tensorJson(r.forward.shape, r.forward.values);
  if (r.backward) j.backward = kr.tensorJson(r.backward.shape, r.backward.values);
  if (r.states.length) j.states = r.states.map((s) => kr.tensorJson(s.shape, s.values));
  return j;
}

function sequenceJson(s) {
  const j = { length: s.length };
  if (s.features) j.features = s.features;
  if (s.token_ids) j.token_ids = s.token_ids;
  if (s.initial_state) j.initial_state = s.initial_state.map((v) => kr.tensorJson([v.length], v));
  return j;
}

function fmtDiff(d) {
  return d === 0 ? '0' : d.toExponential(1);
}

function maskDescription(spec, sequences) {
  if (!spec.masked) return '';
  const what = spec.layers[0].type === 'embedding' ? 'token id 0' : 'all-zero feature vectors';
  const parts = sequences.map((s, i) => `sequence ${i} (length ${s.length}): ` +
    (spec.masked[i].length ? spec.masked[i].join(', ') : 'none'));
  return `. Masked steps (${what}): ${parts.join('; ')}`;
}

async function runCase(spec) {
  const dir = path.join(OUT_DIR, spec.name);
  fs.mkdirSync(dir, { recursive: true });
  const rng = kr.makeRng(kr.hashString(spec.name));
  const model = buildModel(spec, rng);

  if (spec.negative) {
    writeKerasFiles(dir, spec, model);
    fs.writeFileSync(path.join(dir, 'expected_error.txt'), spec.expectedError + '\n');
    return { checks: 'negative: ' + spec.expectedError };
  }

  const sequences = makeSequences(spec, model, rng);
  const maskMode = spec.flavour === 'tfjs' ? 'tfjs' : 'keras';
  const checks = [];
  const short = [];
  let expected;
  let reference;

  if (spec.flavour === 'tfjs') {
    const tfModel = buildTfjsModel(spec, model);
    expected = sequences.map((s) => predictTfjs(tfModel, model, s));
    let artifacts = null;
    await tfModel.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
    }));
    writeTfjsFiles(dir, artifacts);
    // Reload the files as written and predict again: must be identical.
    const reloaded = await loadWrittenModel(dir);
    let dLoad = 0;
    sequences.forEach((s, i) => {
      dLoad = Math.max(dLoad, kr.maxDiff(expected[i], predictTfjs(reloaded, model, s), 'reload'));
    });
    if (dLoad !== 0) throw new Error(`${spec.name}: reloaded model differs by ${dLoad}`);
    checks.push('tf.loadLayersModel of the written model.json + weights.bin, max abs diff 0');
    short.push('reload 0');
    // Standalone tfjs layers composed like Keras' Bidirectional.call.
    const built = buildStandalone(model);
    let dCompose = 0;
    sequences.forEach((s, i) => {
      dCompose = Math.max(dCompose, kr.maxDiff(expected[i], composeEval(model, built, s, 'tfjs'), 'compose'));
    });
    if (dCompose > 1e-6) throw new Error(`${spec.name}: composition differs from tfjs by ${dCompose}`);
    checks.push(`standalone tfjs layers composed as Keras' Bidirectional.call, max abs diff ${fmtDiff(dCompose)}`);
    short.push('compose ' + fmtDiff(dCompose));
    reference = 'tfjs';
  } else {
    writeKerasFiles(dir, spec, model);
    const built = buildStandalone(model);
    expected = sequences.map((s) => composeEval(model, built, s, 'keras'));
    reference = 'tfjs+keras-equations';
    // Where tfjs can load the converter's model.json (stock layers only), its
    // predictions must agree too.
    const custom = model.layers.some((l) => l.kind === 'bidirectional' && (l.explicitBackward ||
      [l.forward, l.backward].some((d) => d.cell === 'gru' && d.reset_after)));
    if (!custom && !spec.masked) {
      try {
        const loaded = await loadWrittenModel(dir);
        let d = 0;
        sequences.forEach((s, i) => { d = Math.max(d, kr.maxDiff(expected[i], predictTfjs(loaded, model, s), 'tfjs load')); });
        if (d > TOLERANCE) throw new Error(`${spec.name}: tfjs.loadLayersModel differs by ${d}`);
        checks.push(`tf.loadLayersModel of this model.json, max abs diff ${fmtDiff(d)}`);
        short.push('tfjs-load ' + fmtDiff(d));
      } catch (e) {
        if (/differs by/.test(e.message)) throw e;
        short.push('tfjs-load failed: ' + e.message.split('\n')[0]);
      }
    }
  }

  let d64 = 0;
  for (let i = 0; i < sequences.length; i++) {
    d64 = Math.max(d64, kr.maxDiff(expected[i],
      await kr.evalReference(model, sequences[i], kr.runner64, maskMode), 'float64'));
  }
  if (d64 > TOLERANCE) throw new Error(`${spec.name}: float64 reference differs by ${d64}`);
  checks.push(`float64 Keras equations (${maskMode} masking), max abs diff ${fmtDiff(d64)}`);
  short.push('f64 ' + fmtDiff(d64));

  const bis = model.layers.filter((l) => l.kind === 'bidirectional');
  if (bis.every((l) => onnx.layerOnnxCompatible(l.forward) && onnx.layerOnnxCompatible(l.backward))) {
    onnx.usage.clear();
    const runner = kr.compactingRunner((f, b, x, T, inSize, init) =>
      onnx.runBidirectionalRnns(f, b, Float32Array.from(x), T, inSize, init));
    let dOrt = 0;
    for (let i = 0; i < sequences.length; i++) {
      dOrt = Math.max(dOrt, kr.maxDiff(expected[i],
        await kr.evalReference(model, sequences[i], runner, maskMode), 'onnx'));
    }
    if (dOrt > TOLERANCE) throw new Error(`${spec.name}: onnxruntime differs by ${dOrt}`);
    checks.push(`onnxruntime ${[...onnx.usage].join(' + ')}` +
      (spec.masked ? ' on the unmasked steps' : '') + `, max abs diff ${fmtDiff(dOrt)}`);
    short.push('ort ' + fmtDiff(dOrt));
  } else {
    const missing = new Set();
    for (const l of bis) {
      for (const d of [l.forward, l.backward]) {
        for (const a of [d.activation, d.recurrent_activation]) if (a && !onnx.onnxSupports(a)) missing.add(a);
      }
    }
    checks.push(`onnxruntime: not applicable (ONNX RNN operators have no ${[...missing].join(', ')})`);
    short.push('ort n/a');
  }

  const golden = {
    name: spec.name,
    description: spec.description + maskDescription(spec, sequences),
    reference,
    cross_check: checks.join('; '),
    sequences: sequences.map(sequenceJson),
    expected: expected.map(resultJson),
    tolerance: TOLERANCE,
  };
  protoCheck.checkGoldenCase(kr.plain(golden), spec.name);
  fs.writeFileSync(path.join(dir, 'expected.json'), kr.stringify(golden, 0) + '\n');

  // Output ranges, for the README.
  let sum = 0;
  let n = 0;
  let maxAbs = 0;
  for (const r of expected) {
    for (const t of [r.output, r.forward, r.backward].concat(r.states)) {
      if (!t) continue;
      for (const v of t.values) { sum += Math.abs(v); n++; maxAbs = Math.max(maxAbs, Math.abs(v)); }
    }
  }
  return { checks: short.join(', ') + `; mean|y| ${(sum / n).toFixed(2)}, max|y| ${maxAbs.toFixed(2)}` };
}

async function child(name) {
  loadLibs();
  await tf.setBackend('cpu');
  await tf.ready();
  const spec = CASES.find((c) => c.name === name);
  const summary = await runCase(spec);
  process.stdout.write('SUMMARY ' + JSON.stringify(summary) + '\n');
}

if (process.argv[2] === '--child') {
  child(process.argv[3]).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  try {
    parent(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
