'use strict';
// Strict schema check of a fixture against golden_case.proto and
// proto/biserve/v1/model.proto, so a fixture the C++ test would reject
// (JsonStringToMessage fails on unknown fields and wrong types) is caught here.
// Field names must be the proto (snake_case) names.

const path = require('path');
const protobuf = require('protobufjs');

const PROTO_ROOT = path.join(__dirname, '..', '..', 'proto');

let goldenType = null;

function load() {
  if (goldenType) return goldenType;
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    if (target.startsWith('biserve/')) return path.join(PROTO_ROOT, target);
    return path.join(path.dirname(origin), target);
  };
  root.loadSync(path.join(__dirname, 'golden_case.proto'), { keepCase: true });
  root.resolveAll();
  goldenType = root.lookupType('biserve.test.GoldenCase');
  return goldenType;
}

const INT_RANGES = {
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

function checkScalar(field, v, where) {
  const fail = (why) => { throw new Error(`${where}: ${why} (${JSON.stringify(v)})`); };
  if (field.resolvedType instanceof protobuf.Type) {
    checkMessage(field.resolvedType, v, where);
  } else if (field.resolvedType instanceof protobuf.Enum) {
    if (typeof v !== 'string' || !(v in field.resolvedType.values)) fail('not a value of ' + field.resolvedType.name);
  } else if (field.type in INT_RANGES) {
    const [lo, hi] = INT_RANGES[field.type];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) fail('not an ' + field.type);
  } else if (field.type === 'float' || field.type === 'double') {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail('not a finite number');
    if (field.type === 'float' && Math.abs(v) > 3.4028234663852886e38) fail('out of float range');
  } else if (field.type === 'bool') {
    if (typeof v !== 'boolean') fail('not a bool');
  } else if (field.type === 'string') {
    if (typeof v !== 'string') fail('not a string');
  } else {
    fail('unsupported field type ' + field.type);
  }
}

function checkMessage(type, obj, where) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new Error(`${where}: ${type.name} must be an object`);
  }
  for (const key of Object.keys(obj)) {
    const field = type.fields[key];
    if (!field) throw new Error(`${where}: unknown field "${key}" in ${type.fullName}`);
    const v = obj[key];
    if (v === null) throw new Error(`${where}.${key}: null`);
    if (field.repeated) {
      if (!Array.isArray(v)) throw new Error(`${where}.${key}: must be an array`);
      v.forEach((e, i) => checkScalar(field, e, `${where}.${key}[${i}]`));
    } else {
      checkScalar(field, v, `${where}.${key}`);
    }
  }
  for (const oneof of type.oneofsArray) {
    const set = oneof.oneof.filter((n) => n in obj);
    if (set.length > 1) throw new Error(`${where}: oneof ${oneof.name} has ${set.join(', ')}`);
  }
}

function checkGoldenCase(obj, where) {
  checkMessage(load(), obj, where);
}

module.exports = { checkGoldenCase };
