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
// What tfjs lacks is added from Keras' definitions in keras_reference.js
// (shared with generate_tfjs_models.js): the GRU cell with reset_after=True
// (KerasGRU) and Bidirectional's explicit backward_layer
// (composeBidirectional). Every case is cross-checked against a float64
// re-implementation of the Keras equations, and every case whose activations
// ONNX's RNN operators have is also cross-checked against ONNX Runtime
// (onnx_reference.js). The generator throws if any check differs by more than
// TOLERANCE.
//
// Deterministic: weights, inputs and states come from a seeded PRNG (one
// stream per case, seeded from the case name); no Math.random.

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const kr = require('./keras_reference');
const onnx = require('./onnx_reference');

const { L, GRU, GRU0, S, SEQ, STATE, SEQ_STATE, bi, dense, UNBOUNDED_SCALE } = kr;
const FIXTURE_DIR = path.join(__dirname, 'fixtures');

// ---------------------------------------------------------------------------
// TensorFlow.js evaluation.

// The standalone tfjs layers of kr.buildStandalone, plus tfjs' own
// Bidirectional (`wrapper`) for each Bidirectional without an explicit
// backward layer: the expected values come from the wrapper, and
// composeBidirectional() on the standalone layers is checked against it.
function buildTfjs(model) {
  const built = kr.buildStandalone(model);
  model.layers.forEach((l, i) => {
    if (l.kind !== 'bidirectional' || l.explicitBackward) return;
    const wrapper = tf.layers.bidirectional({
      layer: kr.tfjsRnnLayer(l.forward),
      mergeMode: l.merge_mode === 'none' ? null : l.merge_mode,
    });
    tf.tidy(() => { wrapper.apply(tf.zeros([1, 1, l.forward.inputSize])); });
    kr.setAndCheckWeights(wrapper, ...kr.layerArraysAndShapes(l));
    if (wrapper.backwardLayer.goBackwards !== l.backward.go_backwards) {
      throw new Error('tfjs backward go_backwards differs from the model');
    }
    built[i].wrapper = wrapper;
  });
  return built;
}

function disposeTfjs(built) {
  for (const b of built) {
    for (const layer of [b.layer, b.wrapper, b.forward, b.backward]) if (layer) layer.dispose();
  }
}

// ---------------------------------------------------------------------------
// biserve model JSON.

function rnnWeightsJson(layer) {
  const [ks, rks, bs] = kr.rnnWeightShapes(layer);
  const w = {
    kernel: kr.tensorJson(ks, layer.weights.kernel),
    recurrent_kernel: kr.tensorJson(rks, layer.weights.recurrent_kernel),
  };
  if (layer.use_bias) w.bias = kr.tensorJson(bs, layer.weights.bias);
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
            embeddings: kr.tensorJson([l.vocab, l.dim], l.embeddings),
            ...(l.mask_zero ? { mask_zero: true } : {}),
          },
        };
      }
      if (l.kind === 'activation') return { activation: { name: l.name, activation: l.activation } };
      if (l.kind === 'pool') {
        return { global_pooling: { name: l.name, pooling: l.pooling === 'max' ? 'MAX' : 'AVERAGE' } };
      }
      if (l.kind === 'batch_norm' || l.kind === 'layer_norm') {
        const n = { name: l.name, epsilon: l.epsilon, center: l.center, scale: l.scale };
        if (l.gamma) n.gamma = kr.tensorJson([l.inputSize], l.gamma);
        if (l.beta) n.beta = kr.tensorJson([l.inputSize], l.beta);
        if (l.kind === 'layer_norm') return { layer_normalization: n };
        n.moving_mean = kr.tensorJson([l.inputSize], l.moving_mean);
        n.moving_variance = kr.tensorJson([l.inputSize], l.moving_variance);
        return { batch_normalization: n };
      }
      if (l.kind === 'masking') return { masking: { name: 'masking', mask_value: l.mask_value } };
      if (l.kind === 'dense') {
        const d = { name: l.name, units: l.units, activation: l.activation, use_bias: l.use_bias };
        d.kernel = kr.tensorJson([l.inputSize, l.units], l.kernel);
        if (l.use_bias) d.bias = kr.tensorJson([l.units], l.bias);
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

// ---------------------------------------------------------------------------
// The cases (shorthands from keras_reference.js).

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

  // Activation, normalization and pooling layers (docs/model-format.md).
  {
    name: 'lstm_layer_norm_max_pool_dense_softmax',
    description: 'Bidirectional(LSTM 8, return_sequences), concat -> LayerNormalization -> ' +
      'GlobalMaxPooling1D -> Dense 3 softmax',
    input_dim: 6,
    layers: [bi(L(8, SEQ)), { type: 'layer_norm' }, { type: 'pool', pooling: 'max' }, dense(3, 'softmax')],
    lengths: [7, 1, 37, 12],
  },
  {
    name: 'gru_batch_norm_relu_average_pool_batch_norm',
    description: 'Bidirectional(GRU 6 reset_after=False, return_sequences), concat -> BatchNormalization -> ' +
      'Activation relu -> GlobalAveragePooling1D -> BatchNormalization(center=False, epsilon=1e-5)',
    input_dim: 4,
    layers: [bi(GRU0(6, SEQ)), { type: 'batch_norm' }, { type: 'activation', activation: 'relu' },
      { type: 'pool', pooling: 'average' }, { type: 'batch_norm', center: false, epsilon: 1e-5 }],
    lengths: [9, 2, 30],
  },
  {
    name: 'stack_layer_norm_between_activation_layer_norm',
    description: 'Bidirectional(LSTM 6, return_sequences), concat -> LayerNormalization(scale=False) -> ' +
      'Bidirectional(SimpleRNN 4, return_sequences), sum -> Activation tanh -> Dense 5 linear -> ' +
      'LayerNormalization(epsilon=1e-5) per time step',
    input_dim: 3,
    layers: [bi(L(6, SEQ)), { type: 'layer_norm', scale: false }, bi(S(4, SEQ), 'sum'),
      { type: 'activation', activation: 'tanh' }, dense(5, 'linear'), { type: 'layer_norm', epsilon: 1e-5 }],
    lengths: [7, 1, 20],
  },
  {
    name: 'masking_lstm_dense_tanh_average_pool',
    description: 'Masking(0) -> Bidirectional(LSTM 5, return_sequences), concat -> Dense 4 tanh -> ' +
      'GlobalAveragePooling1D over the unmasked steps (Keras; expected values from the float64 Keras ' +
      'equations: tfjs pools masked steps too)',
    input_dim: 3,
    layers: [{ type: 'masking' }, bi(L(5, SEQ)), dense(4, 'tanh'), { type: 'pool', pooling: 'average' }],
    lengths: [9, 1, 23, 6],
    masked: [[3, 4, 8], [], [0, 10, 11, 12, 20, 21, 22], [2, 5]],
    keras_masks: true,
  },
  {
    name: 'embedding_mask_zero_gru_layer_norm_max_pool',
    description: 'Embedding(20, 6, mask_zero) -> Bidirectional(GRU 4 reset_after=False, return_sequences), ' +
      'concat -> LayerNormalization -> GlobalMaxPooling1D over every step (Keras ignores the mask there; ' +
      'expected values from the float64 Keras equations)',
    input_dim: 0,
    layers: [{ type: 'embedding', vocab: 20, dim: 6, mask_zero: true }, bi(GRU0(4, SEQ)), { type: 'layer_norm' },
      { type: 'pool', pooling: 'max' }],
    lengths: [9, 1, 23, 6],
    masked: [[3, 4, 8], [], [0, 10, 11, 12, 20, 21, 22], [2, 5]],
    keras_masks: true,
  },
];

// ---------------------------------------------------------------------------

// A case with masks (`keras_masks`) takes its expected values from the
// float64 Keras equations (Keras' zeros at masked steps, Keras' pooling);
// tfjs is then a cross-check on the unmasked cases only.
async function runMaskedCase(spec, model, sequences) {
  const expected = [];
  for (const s of sequences) {
    const r = await kr.evalReference(model, s, kr.runner64, 'keras');
    const f32 = (t) => (t ? { shape: t.shape, values: Float32Array.from(t.values) } : null);
    expected.push({ output: f32(r.output), forward: f32(r.forward), backward: f32(r.backward),
      states: r.states.map(f32) });
  }
  const ort = await kr.onnxCheck(model, sequences, expected, 'keras', true);
  const golden = kr.goldenCase({
    name: spec.name,
    description: spec.description,
    reference: 'keras-equations',
    checks: [ort.check],
    model: modelJson(model),
    sequences,
    expected,
  });
  return { golden, diffOrt: ort.diff, diff64: 0, composeDiff: null };
}

async function runCase(spec) {
  const rng = kr.makeRng(kr.hashString(spec.name));
  const model = kr.buildModel(spec, rng);
  const sequences = kr.makeSequences(spec, model, rng);
  if (spec.keras_masks) return runMaskedCase(spec, model, sequences);
  const wrapped = model.layers.some((l) => l.kind === 'bidirectional' && !l.explicitBackward);

  const built = buildTfjs(model);
  const expected = sequences.map((s) => kr.evalTfjsLayers(model, built, s, { useWrappers: true }));

  // Self-check: composeBidirectional() (used for explicit backward layers)
  // must agree with tfjs' Bidirectional wherever tfjs' wrapper applies.
  let composeDiff = null;
  if (wrapped) {
    composeDiff = 0;
    sequences.forEach((s, i) => {
      composeDiff = Math.max(composeDiff, kr.maxDiff(expected[i], kr.evalTfjsLayers(model, built, s), 'composition'));
    });
    if (composeDiff > 1e-7) throw new Error(`${spec.name}: composition differs from tfjs by ${composeDiff}`);
  }

  const diff64 = await kr.referenceDiff('float64 reference', model, sequences, expected, kr.runner64);
  const ort = await kr.onnxCheck(model, sequences, expected);
  const checks = [ort.check, `float64 Keras equations, max abs diff ${kr.fmtDiff(diff64)}`];

  const golden = kr.goldenCase({
    name: spec.name,
    description: spec.description,
    reference: kr.usesKerasEquations(model) ? 'tfjs+keras-equations' : 'tfjs',
    checks,
    model: modelJson(model),
    sequences,
    expected,
  });
  disposeTfjs(built);
  return { golden, diffOrt: ort.diff, diff64, composeDiff };
}

async function main() {
  const only = process.argv.slice(2);
  const selected = kr.selectCases(CASES, only);
  await tf.setBackend('cpu');
  await tf.ready();
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
    const text = kr.stringify(golden, 0) + '\n';
    fs.writeFileSync(path.join(FIXTURE_DIR, spec.name + '.json'), text);
    total += text.length;
    if (diffOrt !== null) worstOrt = Math.max(worstOrt, diffOrt);
    worst64 = Math.max(worst64, diff64);
    console.log([
      spec.name.padEnd(46),
      (text.length / 1024).toFixed(0).padStart(5) + ' KiB',
      'ort ' + (diffOrt === null ? '   n/a ' : kr.fmtDiff(diffOrt).padStart(7)),
      'f64 ' + kr.fmtDiff(diff64).padStart(7),
      composeDiff === null ? '' : 'compose ' + kr.fmtDiff(composeDiff),
    ].join('  '));
  }
  console.log(`${selected.length} fixtures, ${(total / 1024 / 1024).toFixed(2)} MiB; ` +
    `worst onnxruntime diff ${kr.fmtDiff(worstOrt)}, worst float64 diff ${kr.fmtDiff(worst64)} ` +
    `(onnxruntime-node ${onnx.ortVersion}, tfjs ${tf.version.tfjs})`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
