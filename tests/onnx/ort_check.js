'use strict';
// Cross-checks the ONNX fixtures with ONNX Runtime: runs every loadable case's
// .onnx file on its `batch` and `solo` inputs and prints the max abs
// difference from the expected outputs (PyTorch's). Exits 1 when a difference
// exceeds the case's tolerance.
//
//   (cd tests/golden && npm ci)   # once: onnxruntime-node
//   node tests/onnx/ort_check.js [CASE...]

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const ort = createRequire(path.join(__dirname, '..', 'golden', 'package.json'))('onnxruntime-node');
const FIXTURES = path.join(__dirname, 'fixtures');

function toOrt(t) {
  const dims = t.shape.map(Number);
  if (t.datatype === 'INT64') {
    return new ort.Tensor('int64', BigInt64Array.from((t.int64_data || []).map((v) => BigInt(v))), dims);
  }
  return new ort.Tensor('float32', Float32Array.from(t.float_data || []), dims);
}

async function check(session, run) {
  const feeds = {};
  for (const t of run.inputs) feeds[t.name] = toOrt(t);
  const results = await session.run(feeds);
  return compare(results, run.outputs);
}

function compare(results, outputs) {
  let max = 0;
  for (const want of outputs) {
    const got = results[want.name];
    if (!got) throw new Error(`no output ${want.name}`);
    const shape = Array.from(got.dims).map(Number);
    if (JSON.stringify(shape) !== JSON.stringify(want.shape.map(Number))) {
      throw new Error(`${want.name}: shape ${JSON.stringify(shape)} vs expected ${JSON.stringify(want.shape)}`);
    }
    const data = want.float_data || [];
    for (let i = 0; i < data.length; i++) {
      const d = Math.abs(got.data[i] - data[i]);
      if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
    }
  }
  return max;
}

// The batch axis of a solo run's tensor: the axis where it is 1 and the batch
// run's tensor of the same name has the batch size.
function batchAxis(solo, batch, B) {
  const axes = solo.shape.map(Number).map((d, a) => (d === 1 && Number(batch.shape[a]) === B ? a : -1))
    .filter((a) => a >= 0);
  if (axes.length !== 1) throw new Error(`${solo.name}: no unique batch axis`);
  return axes[0];
}

function tile(t, axis, B) {
  const shape = t.shape.map(Number);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const src = t.datatype === 'INT64' ? t.int64_data : t.float_data;
  const data = [];
  for (let o = 0; o < outer; o++) for (let b = 0; b < B; b++) data.push(...src.slice(o * inner, (o + 1) * inner));
  shape[axis] = B;
  return t.datatype === 'INT64' ? { ...t, shape, int64_data: data } : { ...t, shape, float_data: data };
}

function first(t, axis) {
  const shape = Array.from(t.dims).map(Number);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const data = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) data.set(t.data.subarray(o * shape[axis] * inner, o * shape[axis] * inner + inner), o * inner);
  shape[axis] = 1;
  return { dims: shape, data };
}

async function checkTiled(session, c, run) {
  const B = c.solo.length;
  const byName = (list, n) => list.find((t) => t.name === n);
  const feeds = {};
  for (const t of run.inputs) {
    feeds[t.name] = toOrt(tile(t, batchAxis(t, byName(c.batch.inputs, t.name), B), B));
  }
  const results = await session.run(feeds);
  const firsts = {};
  for (const want of run.outputs) {
    firsts[want.name] = first(results[want.name], batchAxis(want, byName(c.batch.outputs, want.name), B));
  }
  return compare(firsts, run.outputs);
}

async function main() {
  const wanted = process.argv.slice(2);
  const files = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).sort();
  let failed = false;
  for (const file of files) {
    const c = JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8'));
    if (wanted.length && !wanted.includes(c.name)) continue;
    if ((c.expected_error || []).length) {
      let refused = '';
      try {
        await ort.InferenceSession.create(path.join(FIXTURES, c.onnx_file));
        refused = 'ORT loads it';
      } catch (e) {
        refused = 'ORT refuses it too';
      }
      console.log(`${c.name}: refusal case (${refused})`);
      continue;
    }
    const session = await ort.InferenceSession.create(path.join(FIXTURES, c.onnx_file));
    const batch = await check(session, c.batch);
    let solo = 0;
    let soloRan = 0;
    const notes = [];
    let tiled = 0;
    for (const [i, run] of (c.solo || []).entries()) {
      try {
        solo = Math.max(solo, await check(session, run));
        soloRan++;
      } catch (e) {
        // The graph holds a zero initial state sized to the export batch, so
        // ORT refuses batch 1: run the sequence repeated to the export batch
        // instead and compare its first copy.
        notes.push(`solo ${i}: ORT error: ${String(e.message).split('\n')[0].slice(0, 100)}`);
        tiled = Math.max(tiled, await checkTiled(session, c, run));
      }
    }
    const tol = c.tolerance || 1e-5;
    const bad = batch > tol || solo > tol || tiled > tol;
    failed = failed || bad;
    console.log(`${c.name}: batch ${batch.toExponential(2)} solo ${soloRan ? solo.toExponential(2) : '-'}` +
      `${notes.length ? ' (' + notes.length + ' solo runs refused by ORT at batch 1; at the export batch, repeated: ' + tiled.toExponential(2) + ')' : ''}` +
      `${bad ? '  EXCEEDS ' + tol : ''}`);
    if (process.env.VERBOSE && notes.length) console.log('  ' + notes[0]);
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
