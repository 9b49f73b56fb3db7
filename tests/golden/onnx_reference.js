'use strict';
// A second, independent evaluation of Keras recurrent layers with ONNX
// Runtime's RNN, LSTM and GRU operators. generate.js compares every fixture it
// can express this way against the TensorFlow.js results.
//
// The ONNX models are encoded here with protobufjs from the small part of
// onnx.proto that a single-operator graph needs. All weights and states are
// graph inputs, so one session serves every call with the same operator,
// direction and activations.

const protobuf = require('protobufjs');
const ort = require('onnxruntime-node');

// Field numbers as in onnx/onnx.proto (ONNX IR version 7).
const ONNX_PROTO = `
syntax = "proto3";
package onnx;
message AttributeProto {
  string name = 1;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  int32 type = 20;
}
message ValueInfoProto {
  string name = 1;
  TypeProto type = 2;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  repeated AttributeProto attribute = 5;
  string domain = 7;
}
message ModelProto {
  int64 ir_version = 1;
  string producer_name = 2;
  GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
}
message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}
message TensorShapeProto {
  message Dimension {
    int64 dim_value = 1;
    string dim_param = 2;
  }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  Tensor tensor_type = 1;
}
message OperatorSetIdProto {
  string domain = 1;
  int64 version = 2;
}
`;

const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
const ModelProto = root.lookupType('onnx.ModelProto');

const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_FLOATS = 6;
const ATTR_STRINGS = 8;
const ELEM_FLOAT = 1;

// Keras activation name -> ONNX RNN activation (name, alpha, beta).
// ONNX's HardSigmoid defaults (0.2, 0.5) are Keras 2's hard_sigmoid.
const ONNX_ACTIVATIONS = {
  tanh: ['Tanh'],
  sigmoid: ['Sigmoid'],
  relu: ['Relu'],
  hard_sigmoid: ['HardSigmoid', 0.2, 0.5],
  elu: ['Elu', 1.0],
  softsign: ['Softsign'],
  softplus: ['Softplus'],
  linear: ['Affine', 1.0, 0.0],
};

function onnxSupports(activation) {
  return Object.prototype.hasOwnProperty.call(ONNX_ACTIVATIONS, activation);
}

const sessions = new Map();

// Operator and direction of every ONNX Runtime call since the last clear(),
// e.g. "GRU linear_before_reset=1 bidirectional"; generate.js names them in
// each fixture's cross_check.
const usage = new Set();

function valueInfo(name) {
  return { name, type: { tensor_type: { elem_type: ELEM_FLOAT } } };
}

// activations: the ONNX activation list, already in ONNX order for every
// direction, as Keras names.
async function getSession(opType, direction, hidden, activations, extraAttrs, hasInitialC) {
  const key = JSON.stringify([opType, direction, hidden, activations, extraAttrs, hasInitialC]);
  if (sessions.has(key)) return sessions.get(key);
  const attribute = [
    { name: 'direction', type: ATTR_STRING, s: Buffer.from(direction) },
    { name: 'hidden_size', type: ATTR_INT, i: hidden },
    {
      name: 'activations',
      type: ATTR_STRINGS,
      strings: activations.map((a) => Buffer.from(ONNX_ACTIVATIONS[a][0])),
    },
  ];
  // ONNX consumes activation_alpha / activation_beta in order, one value for
  // each listed activation that takes the parameter.
  const alphas = [];
  const betas = [];
  for (const a of activations) {
    const spec = ONNX_ACTIVATIONS[a];
    if (spec.length > 1) alphas.push(spec[1]);
    if (spec.length > 2) betas.push(spec[2]);
  }
  if (alphas.length) attribute.push({ name: 'activation_alpha', type: ATTR_FLOATS, floats: alphas });
  if (betas.length) attribute.push({ name: 'activation_beta', type: ATTR_FLOATS, floats: betas });
  for (const [name, value] of Object.entries(extraAttrs)) {
    attribute.push({ name, type: ATTR_INT, i: value });
  }
  const inputs = ['X', 'W', 'R', 'B', '', 'initial_h'];
  const outputs = ['Y', 'Y_h'];
  if (opType === 'LSTM') {
    inputs.push('initial_c');
    outputs.push('Y_c');
  }
  const model = {
    ir_version: 7,
    producer_name: 'biserve-golden',
    opset_import: [{ domain: '', version: 14 }],
    graph: {
      name: opType,
      node: [{ input: inputs, output: outputs, name: opType, op_type: opType, attribute }],
      input: inputs.filter((n) => n !== '').map(valueInfo),
      output: outputs.map(valueInfo),
    },
  };
  const err = ModelProto.verify(model);
  if (err) throw new Error('bad ONNX model: ' + err);
  const bytes = ModelProto.encode(ModelProto.fromObject(model)).finish();
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'disabled',
  });
  sessions.set(key, session);
  return session;
}

function gateCount(cell) {
  return { simple_rnn: 1, lstm: 4, gru: 3 }[cell];
}

// Keras column block order -> ONNX row block order.
// LSTM: Keras i, f, c, o; ONNX i, o, f, c. GRU: both z, r, h.
function gatePermutation(cell) {
  if (cell === 'lstm') return [0, 3, 1, 2];
  if (cell === 'gru') return [0, 1, 2];
  return [0];
}

// Keras kernel [rows, G*units] (row-major Float32Array) -> ONNX [G*units, rows]
// with ONNX gate order.
function kerasToOnnxMatrix(kernel, rows, units, cell) {
  const G = gateCount(cell);
  const perm = gatePermutation(cell);
  const out = new Float32Array(G * units * rows);
  for (let og = 0; og < G; og++) {
    const kg = perm[og];
    for (let u = 0; u < units; u++) {
      for (let r = 0; r < rows; r++) {
        out[(og * units + u) * rows + r] = kernel[r * G * units + kg * units + u];
      }
    }
  }
  return out;
}

function kerasToOnnxBias(layer) {
  const G = gateCount(layer.cell);
  const H = layer.units;
  const perm = gatePermutation(layer.cell);
  const out = new Float32Array(2 * G * H);
  if (!layer.use_bias) return out;
  const b = layer.weights.bias;
  const resetAfter = layer.cell === 'gru' && layer.reset_after;
  for (let og = 0; og < G; og++) {
    const kg = perm[og];
    for (let u = 0; u < H; u++) {
      out[og * H + u] = b[kg * H + u];
      if (resetAfter) out[G * H + og * H + u] = b[G * H + kg * H + u];
    }
  }
  return out;
}

function onnxActivationsFor(layer) {
  if (layer.cell === 'lstm') return [layer.recurrent_activation, layer.activation, layer.activation];
  if (layer.cell === 'gru') return [layer.recurrent_activation, layer.activation];
  return [layer.activation];
}

function layerOnnxCompatible(layer) {
  return onnxActivationsFor(layer).every(onnxSupports);
}

function onnxOpType(cell) {
  return { simple_rnn: 'RNN', lstm: 'LSTM', gru: 'GRU' }[cell];
}

function compatibleForOneOp(a, b) {
  return a.cell === b.cell && a.units === b.units &&
    (a.cell !== 'gru' || a.reset_after === b.reset_after);
}

// Runs the directions of one Bidirectional layer with ONNX Runtime.
// dirs: [{layer, reverse, initialState: [Float32Array...] | null}]; all of one
// cell type and size when there are two. x: Float32Array [T, inputSize].
// Returns per direction {y: Float32Array [T, H] in ORIGINAL time order,
// h: Float32Array [H], c: Float32Array [H] (LSTM)}.
async function runOnnx(dirs, x, T, inputSize) {
  const layer0 = dirs[0].layer;
  const cell = layer0.cell;
  const H = layer0.units;
  const G = gateCount(cell);
  const D = dirs.length;
  let direction;
  if (D === 2) direction = 'bidirectional';
  else direction = dirs[0].reverse ? 'reverse' : 'forward';
  const activations = [].concat(...dirs.map((d) => onnxActivationsFor(d.layer)));
  const extra = {};
  if (cell === 'gru') extra.linear_before_reset = layer0.reset_after ? 1 : 0;
  const session = await getSession(onnxOpType(cell), direction, H, activations, extra, cell === 'lstm');
  usage.add(onnxOpType(cell) + (cell === 'gru' ? ' linear_before_reset=' + extra.linear_before_reset : '') +
    ' ' + direction);

  const W = new Float32Array(D * G * H * inputSize);
  const R = new Float32Array(D * G * H * H);
  const B = new Float32Array(D * 2 * G * H);
  const h0 = new Float32Array(D * H);
  const c0 = new Float32Array(D * H);
  dirs.forEach((d, i) => {
    W.set(kerasToOnnxMatrix(d.layer.weights.kernel, inputSize, H, cell), i * G * H * inputSize);
    R.set(kerasToOnnxMatrix(d.layer.weights.recurrent_kernel, H, H, cell), i * G * H * H);
    B.set(kerasToOnnxBias(d.layer), i * 2 * G * H);
    if (d.initialState) {
      h0.set(d.initialState[0], i * H);
      if (cell === 'lstm') c0.set(d.initialState[1], i * H);
    }
  });
  const feeds = {
    X: new ort.Tensor('float32', Float32Array.from(x), [T, 1, inputSize]),
    W: new ort.Tensor('float32', W, [D, G * H, inputSize]),
    R: new ort.Tensor('float32', R, [D, G * H, H]),
    B: new ort.Tensor('float32', B, [D, 2 * G * H]),
    initial_h: new ort.Tensor('float32', h0, [D, 1, H]),
  };
  if (cell === 'lstm') feeds.initial_c = new ort.Tensor('float32', c0, [D, 1, H]);
  const res = await session.run(feeds);
  const Y = res.Y.data; // [T, D, 1, H]
  const out = [];
  for (let i = 0; i < D; i++) {
    const y = new Float32Array(T * H);
    for (let t = 0; t < T; t++) {
      for (let u = 0; u < H; u++) y[t * H + u] = Y[(t * D + i) * H + u];
    }
    const r = { y, h: Float32Array.from(res.Y_h.data.subarray(i * H, (i + 1) * H)) };
    if (cell === 'lstm') r.c = Float32Array.from(res.Y_c.data.subarray(i * H, (i + 1) * H));
    out.push(r);
  }
  return out;
}

// Evaluates one Keras recurrent layer (as used inside Bidirectional) with ONNX
// Runtime and returns what Keras' RNN layer returns: the per-step outputs in
// PROCESSING order (for go_backwards, step 0 is the last input), the last
// output, and the final states.
function toKerasRnnResult(r, layer, T) {
  const H = layer.units;
  const seq = new Float32Array(T * H);
  for (let t = 0; t < T; t++) {
    const src = layer.go_backwards ? T - 1 - t : t;
    seq.set(r.y.subarray(src * H, (src + 1) * H), t * H);
  }
  const states = [r.h];
  if (layer.cell === 'lstm') states.push(r.c);
  return { seq, last: r.h, states };
}

// Evaluates a whole Keras Bidirectional layer: fwdLayer and bwdLayer are
// normalized layer descriptions (see generate.js), initialState is
// [fwd states..., bwd states...] or null. Returns
// {seqOut: per-direction processing-order sequences, last, states}.
async function runBidirectionalRnns(fwd, bwd, x, T, inputSize, initialState) {
  const nf = fwd.cell === 'lstm' ? 2 : 1;
  const fState = initialState ? initialState.slice(0, nf) : null;
  const bState = initialState ? initialState.slice(nf) : null;
  const dirs = [
    { layer: fwd, reverse: fwd.go_backwards, initialState: fState },
    { layer: bwd, reverse: bwd.go_backwards, initialState: bState },
  ];
  let results;
  if (compatibleForOneOp(fwd, bwd) && !fwd.go_backwards && bwd.go_backwards) {
    results = await runOnnx(dirs, x, T, inputSize);
  } else {
    results = [
      (await runOnnx([dirs[0]], x, T, inputSize))[0],
      (await runOnnx([dirs[1]], x, T, inputSize))[0],
    ];
  }
  return [toKerasRnnResult(results[0], fwd, T), toKerasRnnResult(results[1], bwd, T)];
}

module.exports = {
  runBidirectionalRnns,
  layerOnnxCompatible,
  usage,
  onnxSupports,
  ortVersion: require('onnxruntime-node/package.json').version,
};
