'use strict';
// Encodes a one-operator ONNX model (a bidirectional LSTM or GRU) with
// protobufjs, from the small part of onnx.proto such a graph needs. Same
// approach as tests/golden/onnx_reference.js, with one difference: here the
// weights are graph initializers (constants), as in a deployed model, so ONNX
// Runtime can pre-pack them once at session creation. Only X (and
// sequence_lens) are fed per run.

const protobuf = require('protobufjs');

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
  repeated TensorProto initializer = 5;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}
message TensorProto {
  repeated int64 dims = 1;
  int32 data_type = 2;
  string name = 8;
  bytes raw_data = 9;
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

const ATTR_INT = 2;
const ATTR_STRING = 3;
const ELEM_FLOAT = 1;
const ELEM_INT32 = 6;

function valueInfo(name, elemType, dims) {
  return {
    name,
    type: { tensor_type: { elem_type: elemType, shape: { dim: dims.map((d) => ({ dim_value: d })) } } },
  };
}

function floatInitializer(name, dims, values) {
  return {
    name,
    dims,
    data_type: ELEM_FLOAT,
    // raw_data is little-endian, as Float32Array is on every platform ORT's
    // npm package ships for.
    raw_data: Buffer.from(values.buffer, values.byteOffset, values.byteLength),
  };
}

// mulberry32: a small seeded PRNG for the weights and inputs. Their values do
// not affect the time; the seed only makes runs repeatable.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomArray(rand, n, scale) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rand() - 1) * scale;
  return out;
}

// Returns the serialized ModelProto of one bidirectional ONNX LSTM or GRU
// node: X [T, batch, input] float (seq-major, ONNX layout 0), optional
// sequence_lens [batch] int32, output Y [T, 2, batch, units] only (Y_h/Y_c are
// not requested). Weights W [2, G*units, input], R [2, G*units, units] and
// B [2, 2*G*units] are random initializers, uniform in +-1/sqrt(units) (W, R)
// and +-0.1 (B) as in bench/workloads.cc, which keeps the gates out of
// saturation.
// GRU uses linear_before_reset=1, i.e. Keras' reset_after=True.
function buildBidirectionalModel({ cell, input, units, T, batch, withSequenceLens, seed = 42 }) {
  const opType = { lstm: 'LSTM', gru: 'GRU' }[cell];
  if (!opType) throw new Error('unknown cell ' + cell);
  const G = cell === 'lstm' ? 4 : 3;
  const rand = mulberry32(seed);
  const scale = 1 / Math.sqrt(units);
  const initializer = [
    floatInitializer('W', [2, G * units, input], randomArray(rand, 2 * G * units * input, scale)),
    floatInitializer('R', [2, G * units, units], randomArray(rand, 2 * G * units * units, scale)),
    floatInitializer('B', [2, 2 * G * units], randomArray(rand, 2 * 2 * G * units, 0.1)),
  ];
  const attribute = [
    { name: 'direction', type: ATTR_STRING, s: Buffer.from('bidirectional') },
    { name: 'hidden_size', type: ATTR_INT, i: units },
  ];
  if (cell === 'gru') attribute.push({ name: 'linear_before_reset', type: ATTR_INT, i: 1 });
  const nodeInputs = ['X', 'W', 'R', 'B'];
  const graphInputs = [valueInfo('X', ELEM_FLOAT, [T, batch, input])];
  if (withSequenceLens) {
    nodeInputs.push('sequence_lens');
    graphInputs.push(valueInfo('sequence_lens', ELEM_INT32, [batch]));
  }
  const model = {
    ir_version: 7,
    producer_name: 'biserve-peer-bench',
    opset_import: [{ domain: '', version: 14 }],
    graph: {
      name: opType,
      node: [{ input: nodeInputs, output: ['Y'], name: opType, op_type: opType, attribute }],
      initializer,
      input: graphInputs,
      output: [valueInfo('Y', ELEM_FLOAT, [T, 2, batch, units])],
    },
  };
  const err = ModelProto.verify(model);
  if (err) throw new Error('bad ONNX model: ' + err);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

module.exports = { buildBidirectionalModel, mulberry32, randomArray };
