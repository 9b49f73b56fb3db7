'use strict';
// ONNX Runtime (onnxruntime-node, CPU execution provider) on biserve_bench's
// workloads: one bidirectional ONNX LSTM/GRU node per workload.
//
//   node bench/peers/ort_bench.js [--filter W2] [--threads 1,2]
//                                 [--min-time 1] [--min-runs 5] [--json]
//
// Prints a markdown table (or JSON) of the median time per batch, seq_per_s
// and GFLOP/s with biserve_bench's FLOPs formula. compare.js uses OrtCase.

const ort = require('onnxruntime-node');
const { buildBidirectionalModel, mulberry32, randomArray } = require('./onnx_model');
const { flopsPerStep, workloadLengths, selectWorkloads } = require('./workloads');

const ORT_VERSION = require('onnxruntime-node/package.json').version;

function nowSeconds() {
  return Number(process.hrtime.bigint()) / 1e9;
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// One workload at one intra-op thread count: an ORT session and its feeds.
class OrtCase {
  static async create(w, threads) {
    const c = new OrtCase();
    c.w = w;
    c.threads = threads;
    c.lengths = workloadLengths(w);
    c.maxLength = Math.max(...c.lengths);
    c.steps = c.lengths.reduce((a, b) => a + b, 0); // real, unpadded steps
    const ragged = w.length === 0;
    const T = c.maxLength;
    const model = buildBidirectionalModel({
      cell: w.cell,
      input: w.input,
      units: w.units,
      T,
      batch: w.batch,
      withSequenceLens: ragged,
    });
    c.session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    });
    // X [T, batch, input], seq-major; steps past a sequence's length are 0.
    const rand = mulberry32(7);
    const x = new Float32Array(T * w.batch * w.input);
    for (let b = 0; b < w.batch; b++) {
      for (let t = 0; t < c.lengths[b]; t++) {
        x.set(randomArray(rand, w.input, 1.0), (t * w.batch + b) * w.input);
      }
    }
    c.feeds = { X: new ort.Tensor('float32', x, [T, w.batch, w.input]) };
    if (ragged) c.feeds.sequence_lens = new ort.Tensor('int32', Int32Array.from(c.lengths), [w.batch]);
    return c;
  }

  async runOnce() {
    const t0 = nowSeconds();
    const out = await this.session.run(this.feeds);
    const t1 = nowSeconds();
    const w = this.w;
    const dims = out.Y.dims.join(',');
    if (dims !== [this.maxLength, 2, w.batch, w.units].join(',')) throw new Error(`${w.name}: Y has shape [${dims}]`);
    return t1 - t0;
  }

  async warmup(minTime = 0.2, minRuns = 2) {
    const start = nowSeconds();
    let runs = 0;
    while (runs < minRuns || nowSeconds() - start < minTime) {
      await this.runOnce();
      runs++;
    }
  }

  // Times runs until at least minTime seconds and minRuns runs have passed;
  // a run that takes long stops after maxTime seconds and at least 3 runs
  // (W4 at one thread). Returns the median seconds per batch and the rates.
  async measure({ minTime = 1, minRuns = 5, maxTime = 6 } = {}) {
    const times = [];
    const start = nowSeconds();
    for (;;) {
      times.push(await this.runOnce());
      const elapsed = nowSeconds() - start;
      if (times.length >= minRuns && elapsed >= minTime) break;
      if (times.length >= 3 && elapsed >= maxTime) break;
    }
    return this.rates(median(times), times.length);
  }

  rates(seconds, runs) {
    const w = this.w;
    return {
      ms: seconds * 1e3,
      runs,
      seq_per_s: w.batch / seconds,
      // biserve's count: real steps only.
      gflops: (flopsPerStep(w) * this.steps) / seconds / 1e9,
      // What ORT computes for a padded batch: every sequence to max length.
      gflops_padded: (flopsPerStep(w) * this.maxLength * w.batch) / seconds / 1e9,
    };
  }

  async release() {
    await this.session.release();
  }
}

function parseArgs(argv, defaults) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error('unknown argument ' + a);
    const key = m[1];
    if (!(key in opts)) throw new Error('unknown option --' + key);
    if (typeof opts[key] === 'boolean') {
      opts[key] = m[2] === undefined ? true : m[2] !== 'false';
    } else {
      const v = m[2] !== undefined ? m[2] : argv[++i];
      if (v === undefined) throw new Error('--' + key + ' needs a value');
      opts[key] = typeof opts[key] === 'number' ? Number(v) : v;
    }
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2), {
    filter: '',
    threads: '1,2',
    'min-time': 1,
    'min-runs': 5,
    json: false,
  });
  const threadCounts = opts.threads.split(',').map(Number);
  const results = [];
  for (const w of selectWorkloads(opts.filter)) {
    for (const n of threadCounts) {
      const c = await OrtCase.create(w, n);
      await c.warmup();
      const r = await c.measure({ minTime: opts['min-time'], minRuns: opts['min-runs'] });
      await c.release();
      results.push({ workload: w.name, threads: n, ...r });
      if (!opts.json) process.stderr.write(`${w.name}/threads:${n}: ${r.ms.toFixed(3)} ms\n`);
    }
  }
  if (opts.json) {
    console.log(JSON.stringify({ onnxruntime_node: ORT_VERSION, results }, null, 2));
    return;
  }
  console.log(`onnxruntime-node ${ORT_VERSION}, node ${process.version}\n`);
  console.log('| workload | threads | ORT ms | seq/s | GFLOP/s | GFLOP/s padded | runs |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    console.log(
      `| ${r.workload} | ${r.threads} | ${r.ms.toFixed(3)} | ${r.seq_per_s.toFixed(1)} | ` +
        `${r.gflops.toFixed(1)} | ${r.gflops_padded.toFixed(1)} | ${r.runs} |`,
    );
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}

module.exports = { OrtCase, ORT_VERSION, median, parseArgs };
