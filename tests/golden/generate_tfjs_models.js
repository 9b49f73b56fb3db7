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
const tf = require('@tensorflow/tfjs');
const kr = require('./keras_reference');

const OUT_DIR = path.join(__dirname, 'tfjs_models');

// ---------------------------------------------------------------------------
// The cases (plain data; see kr.buildModel for the layer fields).

const { L, GRU, GRU0, S, SEQ, SEQ_STATE, bi, dense, UNBOUNDED_SCALE } = kr;
const td = (units, activation) => dense(units, activation, { time_distributed: true });
const emb = (vocab, dim, mask_zero = false) => ({ type: 'embedding', vocab, dim, mask_zero });
const masking = () => ({ type: 'masking' });

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
    name: 'tfjs_lstm_norm_dropout_average_pool_dense', flavour: 'tfjs', input_dim: 4,
    description: 'Sequential: Bidirectional(LSTM 6, return_sequences), concat -> Dropout(0.3) -> ' +
      'BatchNormalization -> LayerNormalization(center=false) -> Activation swish -> ' +
      'GlobalAveragePooling1D -> Dropout(0.2) -> Dense 3 softmax',
    layers: [bi(L(6, SEQ)), { type: 'dropout', rate: 0.3 }, { type: 'batch_norm' },
      { type: 'layer_norm', center: false }, { type: 'activation', activation: 'swish' },
      { type: 'pool', pooling: 'average' }, { type: 'dropout', rate: 0.2 }, dense(3, 'softmax')],
    lengths: [9, 1, 23],
  },
  {
    name: 'keras_masking_lstm_batch_norm_dropout_average_pool_dense', flavour: 'keras', input_dim: 4,
    description: 'Sequential: Masking(mask_value=0) -> Bidirectional(LSTM 5, return_sequences), concat -> ' +
      'Dropout(0.25) -> BatchNormalization -> Activation relu -> GlobalAveragePooling1D (over the unmasked ' +
      'steps, as Keras) -> LayerNormalization -> Dense 2 sigmoid',
    layers: [masking(), bi(L(5, SEQ)), { type: 'dropout', rate: 0.25 }, { type: 'batch_norm' },
      { type: 'activation', activation: 'relu' }, { type: 'pool', pooling: 'average' }, { type: 'layer_norm' },
      dense(2, 'sigmoid')],
    lengths: [9, 1, 23, 6], masked: MASK_PATTERN_4,
  },
  {
    name: 'tfjs_gru_max_pool_batch_norm', flavour: 'tfjs', input_dim: 3,
    description: 'Sequential: Bidirectional(GRU 5 reset_after=False, return_sequences), sum -> ' +
      'GlobalMaxPooling1D -> BatchNormalization(scale=false, epsilon=1e-5) on the vector',
    layers: [bi(GRU0(5, SEQ), 'sum'), { type: 'pool', pooling: 'max' },
      { type: 'batch_norm', scale: false, epsilon: 1e-5 }],
    lengths: [7, 2, 16],
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
  const selected = kr.selectCases(CASES, only);
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
//
// TensorFlow.js layers.

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
        layer: kr.tfjsRnnLayer(l.forward, true),  // saved: tfjs defaults, no KerasGRU
        mergeMode: l.merge_mode === 'none' ? null : l.merge_mode,
      }, extra));
    } else if (l.kind === 'dropout') {
      layer = tf.layers.dropout(Object.assign({ rate: l.rate }, extra));
    } else if (l.kind === 'activation') {
      layer = tf.layers.activation(Object.assign({ activation: kr.tfjsActivation(l.activation) }, extra));
    } else if (l.kind === 'batch_norm' || l.kind === 'layer_norm') {
      const args = Object.assign({ axis: -1, epsilon: l.epsilon, center: l.center, scale: l.scale }, extra);
      layer = l.kind === 'batch_norm' ? tf.layers.batchNormalization(args) : tf.layers.layerNormalization(args);
    } else if (l.kind === 'pool') {
      layer = l.pooling === 'max' ? tf.layers.globalMaxPooling1d(extra) : tf.layers.globalAveragePooling1d(extra);
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
    const [arrays, shapes] = kr.layerArraysAndShapes(l);
    if (arrays.length) kr.setAndCheckWeights(layer, arrays, shapes);
  }
  return tfModel;
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
      result.forward = kr.squeezeBatch(out[0]);
      result.backward = kr.squeezeBatch(out[1]);
      result.states = out.slice(2).map(kr.squeezeBatch);
    } else {
      result.output = kr.squeezeBatch(out[0]);
      result.states = out.slice(1).map(kr.squeezeBatch);
    }
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
        const shapes = kr.rnnWeightShapes(lay);
        kr.rnnArrays(lay).forEach((a, k) => addW(n, `${scope}/${['kernel', 'recurrent_kernel', 'bias'][k]}`, shapes[k], a));
      }
    } else if (l.kind === 'dropout') {
      const n = name('dropout');
      entries.push({ class_name: 'Dropout', name: n,
        config: Object.assign(baseConfig(n, bis), { rate: F(l.rate), noise_shape: null, seed: null }) });
    } else if (l.kind === 'activation') {
      const n = name('activation');
      entries.push({ class_name: 'Activation', name: n,
        config: Object.assign(baseConfig(n, bis), { activation: l.activation }) });
    } else if (l.kind === 'pool') {
      const cls = l.pooling === 'max' ? 'GlobalMaxPooling1D' : 'GlobalAveragePooling1D';
      const n = name(l.pooling === 'max' ? 'global_max_pooling1d' : 'global_average_pooling1d');
      entries.push({ class_name: cls, name: n,
        config: Object.assign(baseConfig(n, bis), { data_format: 'channels_last', keepdims: false }) });
    } else if (l.kind === 'batch_norm' || l.kind === 'layer_norm') {
      // tf.keras 2 writes the axis as built: a list of non-negative axes.
      const bn = l.kind === 'batch_norm';
      const n = name(bn ? 'batch_normalization' : 'layer_normalization');
      const config = Object.assign(baseConfig(n, bis), { axis: [l.onSequence ? 2 : 1] });
      if (bn) config.momentum = F(0.99);
      Object.assign(config, {
        epsilon: F(l.epsilon), center: l.center, scale: l.scale,
        beta_initializer: INIT.zeros(), gamma_initializer: kobj('keras.initializers', 'Ones', {}),
      });
      if (bn) {
        config.moving_mean_initializer = INIT.zeros();
        config.moving_variance_initializer = kobj('keras.initializers', 'Ones', {});
      }
      Object.assign(config, { beta_regularizer: null, gamma_regularizer: null, beta_constraint: null,
        gamma_constraint: null });
      entries.push({ class_name: bn ? 'BatchNormalization' : 'LayerNormalization', name: n, config });
      if (l.gamma) addW(n, `${n}/gamma`, [l.inputSize], l.gamma);
      if (l.beta) addW(n, `${n}/beta`, [l.inputSize], l.beta);
      if (bn) {
        addW(n, `${n}/moving_mean`, [l.inputSize], l.moving_mean);
        addW(n, `${n}/moving_variance`, [l.inputSize], l.moving_variance);
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
// One case: its files and expected.json.

function maskDescription(spec, sequences) {
  if (!spec.masked) return '';
  const what = spec.layers[0].type === 'embedding' ? 'token id 0' : 'all-zero feature vectors';
  const parts = sequences.map((s, i) => `sequence ${i} (length ${s.length}): ` +
    (spec.masked[i].length ? spec.masked[i].join(', ') : 'none'));
  return `. Masked steps (${what}): ${parts.join('; ')}`;
}

// A float64 result rounded to float32, as tfjs' results are.
function f32Result(r) {
  const f32 = (t) => (t ? { shape: t.shape, values: Float32Array.from(t.values) } : null);
  return { output: f32(r.output), forward: f32(r.forward), backward: f32(r.backward), states: r.states.map(f32) };
}

async function runCase(spec) {
  const dir = path.join(OUT_DIR, spec.name);
  fs.mkdirSync(dir, { recursive: true });
  const rng = kr.makeRng(kr.hashString(spec.name));
  const model = kr.buildModel(spec, rng);

  if (spec.negative) {
    writeKerasFiles(dir, spec, model);
    fs.writeFileSync(path.join(dir, 'expected_error.txt'), spec.expectedError + '\n');
    return { checks: 'negative: ' + spec.expectedError };
  }

  const sequences = kr.makeSequences(spec, model, rng);
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
    const built = kr.buildStandalone(model);
    let dCompose = 0;
    sequences.forEach((s, i) => {
      dCompose = Math.max(dCompose, kr.maxDiff(expected[i], kr.evalTfjsLayers(model, built, s), 'compose'));
    });
    if (dCompose > 1e-6) throw new Error(`${spec.name}: composition differs from tfjs by ${dCompose}`);
    checks.push(`standalone tfjs layers composed as Keras' Bidirectional.call, max abs diff ${kr.fmtDiff(dCompose)}`);
    short.push('compose ' + kr.fmtDiff(dCompose));
    reference = 'tfjs';
  } else {
    writeKerasFiles(dir, spec, model);
    const built = kr.buildStandalone(model);
    // tfjs pools masked steps too; Keras' average leaves them out: masked
    // pooling takes its expected values from the float64 Keras equations.
    if (spec.masked && model.layers.some((l) => l.kind === 'pool')) {
      expected = [];
      for (const s of sequences) expected.push(f32Result(await kr.evalReference(model, s, kr.runner64, 'keras')));
      reference = 'keras-equations';
    } else {
      expected = sequences.map((s) => kr.evalTfjsLayers(model, built, s, { maskMode: 'keras' }));
      reference = 'tfjs+keras-equations';
    }
    // Where tfjs can load the converter's model.json (stock layers only), its
    // predictions must agree too.
    if (!kr.usesKerasEquations(model) && !spec.masked) {
      try {
        const loaded = await loadWrittenModel(dir);
        let d = 0;
        sequences.forEach((s, i) => { d = Math.max(d, kr.maxDiff(expected[i], predictTfjs(loaded, model, s), 'tfjs load')); });
        if (d > kr.TOLERANCE) throw new Error(`${spec.name}: tfjs.loadLayersModel differs by ${d}`);
        checks.push(`tf.loadLayersModel of this model.json, max abs diff ${kr.fmtDiff(d)}`);
        short.push('tfjs-load ' + kr.fmtDiff(d));
      } catch (e) {
        if (/differs by/.test(e.message)) throw e;
        short.push('tfjs-load failed: ' + e.message.split('\n')[0]);
      }
    }
  }

  const d64 = await kr.referenceDiff('float64 reference', model, sequences, expected, kr.runner64, maskMode);
  checks.push(`float64 Keras equations (${maskMode} masking), max abs diff ${kr.fmtDiff(d64)}`);
  short.push('f64 ' + kr.fmtDiff(d64));

  const ort = await kr.onnxCheck(model, sequences, expected, maskMode, !!spec.masked);
  checks.push(ort.check);
  short.push('ort ' + (ort.diff === null ? 'n/a' : kr.fmtDiff(ort.diff)));

  const golden = kr.goldenCase({
    name: spec.name,
    description: spec.description + maskDescription(spec, sequences),
    reference,
    checks,
    sequences,
    expected,
  });
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