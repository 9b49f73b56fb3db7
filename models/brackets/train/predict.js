// Runs the trained "brackets" model (tfjs/model.json + weights.bin, loaded
// without tfjs-node) on strings given on the command line. For each string it
// prints the string, a line with '^' under every character the model tags
// (probability > 0.5), and the string's token ids as a JSON array (what a
// biserve request's token_ids carries).
//
// Usage: node predict.js [--model DIR] [--probs] STRING...
//   --probs   also print the per-step probabilities, rounded to 2 decimals
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

const VOCAB = ' ()abcdefghijklmnopqrstuvwxyz';

function encode(s) {
  return Array.from(s, (ch) => {
    const i = VOCAB.indexOf(ch);
    if (i < 0) throw new Error(`character '${ch}' of "${s}" is not in the vocabulary "${VOCAB}"`);
    return i + 1;
  });
}

// A load handler for model.json and its weight shards on the local disk.
function fileLoadHandler(dir) {
  return {
    load: async () => {
      const j = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const shards = [];
      const weightSpecs = [];
      for (const group of j.weightsManifest) {
        for (const p of group.paths) shards.push(fs.readFileSync(path.join(dir, p)));
        weightSpecs.push(...group.weights);
      }
      const all = Buffer.concat(shards);
      return {
        modelTopology: j.modelTopology,
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
        format: j.format,
        generatedBy: j.generatedBy,
        convertedBy: j.convertedBy,
      };
    },
  };
}

async function main() {
  const argv = process.argv.slice(2);
  let dir = path.join(__dirname, 'tfjs');
  let showProbs = false;
  const strings = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--model') dir = argv[++i];
    else if (argv[i] === '--probs') showProbs = true;
    else strings.push(argv[i]);
  }
  if (strings.length === 0) {
    throw new Error('usage: node predict.js [--model DIR] [--probs] STRING...');
  }
  await tf.setBackend('cpu');
  await tf.ready();
  const model = await tf.loadLayersModel(fileLoadHandler(dir));

  for (const s of strings) {
    const ids = encode(s);
    if (ids.length === 0) continue;
    // One string at a time: no padding (the model has no masking).
    const probs = tf.tidy(() =>
      model.predict(tf.tensor2d([ids], [1, ids.length], 'int32')).arraySync()[0].map((p) => p[0]));
    console.log(`"${s}"`);
    console.log(' ' + probs.map((p) => (p > 0.5 ? '^' : ' ')).join('').replace(/\s+$/, ''));
    console.log(`token_ids: ${JSON.stringify(ids)}`);
    if (showProbs) {
      console.log(`probabilities: [${probs.map((p) => p.toFixed(2)).join(', ')}]`);
      console.log(`probabilities (full float32): ${JSON.stringify(probs)}`);
    }
    console.log();
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
