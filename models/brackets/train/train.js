// Trains biserve's bundled example model "brackets" with TensorFlow.js
// (@tensorflow/tfjs, pure-JS CPU backend) and writes it in the TensorFlow.js
// Layers format to tfjs/model.json + tfjs/weights.bin, ready for
//
//   build/bin/biserve_convert --from tfjs models/brackets/train/tfjs/model.json \
//       --out models/brackets/1/model.pb
//
// The task: tag the characters that sit inside a bracket pair. A character is
// tagged 1 when it is not a bracket, the nearest bracket before it is '(' and
// the nearest bracket after it is ')' (so there is a '(' before it with no ')'
// in between, and a ')' after it with no '(' in between); else 0. Brackets are
// always 0. Unmatched brackets are common in the data, so a character's tag
// depends on both what comes before it and what comes after it.
//
// Token ids: 1 + the character's index in VOCAB (' ' = 1, '(' = 2, ')' = 3,
// 'a' = 4, ..., 'z' = 29); id 0 is reserved and never used. The served model
// has no masking, so training never pads: every batch holds strings of one
// length (bucketing by length).
//
// Usage: node train.js [--steps N] [--out DIR]
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

const VOCAB = ' ()abcdefghijklmnopqrstuvwxyz';
const INPUT_DIM = VOCAB.length + 1;  // 30: the vocabulary plus reserved id 0
const MAX_LEN = 40;
const SEED = 20240607;

function parseArgs(argv) {
  const args = { steps: 3000, out: path.join(__dirname, 'tfjs'), batch: 32, target: 0.99 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--steps') args.steps = Number(argv[++i]);
    else if (argv[i] === '--out') args.out = argv[++i];
    else throw new Error(`unknown argument ${argv[i]}; usage: node train.js [--steps N] [--out DIR]`);
  }
  return args;
}

// mulberry32: a small seeded PRNG, so the data is the same on every run.
function makeRng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function encode(s) {
  return Array.from(s, (ch) => {
    const i = VOCAB.indexOf(ch);
    if (i < 0) throw new Error(`character '${ch}' is not in the vocabulary "${VOCAB}"`);
    return i + 1;
  });
}

// The rule, literally: 1 for a non-bracket with '(' as the nearest bracket
// before it and ')' as the nearest bracket after it.
function tags(s) {
  const n = s.length;
  const before = new Array(n);  // nearest bracket strictly before i, or ''
  const after = new Array(n);   // nearest bracket strictly after i, or ''
  let last = '';
  for (let i = 0; i < n; i++) {
    before[i] = last;
    if (s[i] === '(' || s[i] === ')') last = s[i];
  }
  last = '';
  for (let i = n - 1; i >= 0; i--) {
    after[i] = last;
    if (s[i] === '(' || s[i] === ')') last = s[i];
  }
  return Array.from(s, (ch, i) =>
    (ch !== '(' && ch !== ')' && before[i] === '(' && after[i] === ')') ? 1 : 0);
}

// A random string of `len` characters. The bracket rate varies from string
// to string (none at all up to dense), so short and long spans, unmatched
// '(' and ')', '((' and '))' all occur; spaces and letters fill the rest.
function randomString(rng, len) {
  const bracketRate = rng() < 0.1 ? 0 : 0.03 + 0.3 * rng();
  const spaceRate = 0.15 * rng();
  let s = '';
  for (let i = 0; i < len; i++) {
    const u = rng();
    if (u < bracketRate / 2) s += '(';
    else if (u < bracketRate) s += ')';
    else if (u < bracketRate + spaceRate) s += ' ';
    else s += VOCAB[3 + Math.floor(rng() * 26)];
  }
  return s;
}

// [batch, len] ids and [batch, len, 1] targets, all strings of length `len`.
function makeBatch(rng, len, batch) {
  const ids = [];
  const ys = [];
  for (let b = 0; b < batch; b++) {
    const s = randomString(rng, len);
    ids.push(encode(s));
    ys.push(tags(s).map((t) => [t]));
  }
  return { ids, ys };
}

function buildModel() {
  // Seeded initializers. The Bidirectional wrapper builds its backward LSTM
  // from the forward one's config (same seeds); the input is reversed for
  // it, so the two directions still learn different things.
  const model = tf.sequential({ name: 'brackets' });
  model.add(tf.layers.embedding({
    name: 'embedding',
    inputDim: INPUT_DIM,
    outputDim: 8,
    maskZero: false,
    batchInputShape: [null, null],
    embeddingsInitializer: tf.initializers.randomUniform({ minval: -0.05, maxval: 0.05, seed: SEED + 1 }),
  }));
  model.add(tf.layers.bidirectional({
    name: 'bidirectional',
    mergeMode: 'concat',
    layer: tf.layers.lstm({
      name: 'lstm',
      units: 16,
      returnSequences: true,
      kernelInitializer: tf.initializers.glorotUniform({ seed: SEED + 2 }),
      recurrentInitializer: tf.initializers.orthogonal({ seed: SEED + 3 }),
    }),
  }));
  model.add(tf.layers.timeDistributed({
    name: 'time_distributed',
    layer: tf.layers.dense({
      name: 'dense',
      units: 1,
      activation: 'sigmoid',
      kernelInitializer: tf.initializers.glorotUniform({ seed: SEED + 4 }),
    }),
  }));
  return model;
}

// Per-character accuracy over a list of strings, predicted one length at a
// time (no padding).
function accuracy(model, strings) {
  const byLen = new Map();
  for (const s of strings) {
    if (!byLen.has(s.length)) byLen.set(s.length, []);
    byLen.get(s.length).push(s);
  }
  let right = 0;
  let total = 0;
  let wrongStrings = 0;
  for (const [len, group] of byLen) {
    const probs = tf.tidy(() =>
      model.predict(tf.tensor2d(group.map(encode), [group.length, len], 'int32')).arraySync());
    group.forEach((s, b) => {
      const want = tags(s);
      let ok = true;
      for (let t = 0; t < len; t++) {
        const got = probs[b][t][0] > 0.5 ? 1 : 0;
        if (got === want[t]) right++; else ok = false;
        total++;
      }
      if (!ok) wrongStrings++;
    });
  }
  return { acc: right / total, chars: total, strings: strings.length, wrongStrings };
}

// What tfjs-node's file:// handler writes: model.json (the standard tfjs
// Layers format) and one weights.bin shard.
function writeArtifacts(dir, artifacts) {
  fs.mkdirSync(dir, { recursive: true });
  const weightData = Array.isArray(artifacts.weightData)
    ? tf.io.CompositeArrayBuffer.join(artifacts.weightData)
    : artifacts.weightData;
  const modelJSON = {
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
  };
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJSON), 'utf8');
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(weightData));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await tf.setBackend('cpu');
  await tf.ready();
  const start = Date.now();

  const dataRng = makeRng(SEED);
  const heldRng = makeRng(SEED ^ 0x5bd1e995);
  const heldOut = [];
  for (let i = 0; i < 2000; i++) heldOut.push(randomString(heldRng, 1 + Math.floor(heldRng() * MAX_LEN)));

  const model = buildModel();
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'binaryCrossentropy' });
  model.summary();

  let step = 0;
  let reached = null;
  let lossSum = 0;
  const evalEvery = 250;
  while (step < args.steps) {
    // Longer strings are drawn more often: they carry more characters and
    // the long-range cases.
    const len = 1 + Math.floor(Math.sqrt(dataRng()) * MAX_LEN);
    const { ids, ys } = makeBatch(dataRng, len, args.batch);
    const x = tf.tensor2d(ids, [args.batch, len], 'int32');
    const y = tf.tensor3d(ys, [args.batch, len, 1], 'float32');
    const loss = await model.trainOnBatch(x, y);
    tf.dispose([x, y]);
    lossSum += loss;
    step++;
    if (step === 2000) model.optimizer.learningRate = 0.003;
    if (step % evalEvery === 0) {
      const held = accuracy(model, heldOut);
      console.log(`step ${step}: loss ${(lossSum / evalEvery).toFixed(4)}, held-out per-character ` +
        `accuracy ${(100 * held.acc).toFixed(3)}% (${held.wrongStrings} of ${held.strings} strings ` +
        `with a wrong tag), ${((Date.now() - start) / 1000).toFixed(0)} s`);
      lossSum = 0;
      if (held.acc >= 0.999 && held.wrongStrings <= 2) { reached = held; break; }
      reached = held;
    }
  }
  const final = accuracy(model, heldOut);
  const seconds = (Date.now() - start) / 1000;
  console.log(`trained ${step} steps of ${args.batch} strings in ${seconds.toFixed(0)} s`);
  console.log(`held-out per-character accuracy: ${(100 * final.acc).toFixed(3)}% ` +
    `(${final.chars} characters in ${final.strings} strings of length 1..${MAX_LEN}; ` +
    `${final.wrongStrings} strings with a wrong tag)`);
  if (final.acc < args.target) {
    throw new Error(`held-out accuracy ${final.acc} is below ${args.target}; not saving`);
  }

  let artifacts = null;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  writeArtifacts(args.out, artifacts);
  console.log(`wrote ${path.join(args.out, 'model.json')} and weights.bin`);
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
