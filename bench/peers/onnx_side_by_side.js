'use strict';
// The same .onnx file in ONNX Runtime and in biserve (issue 17): a PyTorch
// tagger, Embedding(5000, 128) -> 2-layer BiLSTM (hidden 256, batch_first)
// -> Linear(512, 20), made by make_onnx_tagger.py. From the repo root:
//
//   node bench/peers/onnx_side_by_side.js [--rounds 5] [--threads 1,2]
//       [--min-time 1] [--build build] [--models bench/results/onnx]
//       [--filter REGEX] [--json out.json] [--ort-only] [--ort-no-spin]
//
// (onnx_side_by_side.sh makes the models first when they are missing.)
//
// 1. Output check: one padded batch (32 x 50, tagger.onnx) and one ragged
//    batch (32 sequences of lengths 50, 31, 17, ..., tagger_packed.onnx,
//    with `lengths`) through both engines; the max abs difference over every
//    sequence's real steps.
// 2. Speed: for each case and thread count, ORT (this process, one session
//    per case and thread count, intraOpNumThreads = n, interOpNumThreads = 1)
//    and biserve (build/bin/biserve_bench_onnx, a child process: the file
//    through LoadAnyModelFile, then Evaluate() on an n-thread pool) in
//    turn, which one goes first swapping every round; rounds are outermost,
//    so each case's samples spread over the whole run. Each measurement is
//    the median time per batch over at least --min-time seconds and 5 runs,
//    after a warm-up. The table gives the medians over rounds and the median
//    of the per-round ratios ORT ms / biserve ms (> 1: biserve faster).
//    GFLOP/s count the real tokens (flopsPerToken); "% of peak" divides by
//    biserve_bench's BM_GemmPeak at the same thread count (read once per
//    round, the highest reading kept), when <build>/bin/biserve_bench exists.
//
// --ort-no-spin sets ORT's session.intra_op.allow_spinning = 0: its idle
// intra-op threads then sleep instead of spinning, which can help it on a
// busy machine (ONNX Runtime's default is to spin).
//
// Progress goes to stderr, the report (markdown) to stdout. Without a
// working importer (biserve_bench_onnx fails) it reports ORT alone and says
// why.

const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require('onnxruntime-node');
const { ORT_VERSION, median, parseArgs } = require('./ort_bench');
const { mulberry32 } = require('./onnx_model');

const REPO_ROOT = path.resolve(__dirname, '..', '..');

// The tagger of make_onnx_tagger.py.
const TAGGER = { vocab: 5000, embed: 128, hidden: 256, layers: 2, tags: 20 };

// FLOPs per token: each BiLSTM layer 2 directions x 2 x 4 gates x hidden x
// (input + hidden), as biserve_bench counts a layer; the Linear 2 x 512 x 20.
// The embedding lookup counts nothing.
function flopsPerToken() {
  const { embed, hidden, layers, tags } = TAGGER;
  let flops = 0;
  for (let l = 0; l < layers; l++) {
    const input = l === 0 ? embed : 2 * hidden;
    flops += 2 * 2 * 4 * hidden * (input + hidden);
  }
  return flops + 2 * 2 * hidden * tags;
}

// Token id of sequence b at step t: a fixed hash, the same on both sides
// (they read it from one file).
function tokenId(b, t) {
  return (Math.imul(b * 131 + t * 977 + 12345, 2654435761) >>> 0) % TAGGER.vocab;
}

// 50, 31, 17, then uniform in 1..T (mulberry32, seed 17).
function raggedLengths(batch, T) {
  const fixed = [T, 31, 17].filter((x) => x <= T);
  const rand = mulberry32(17);
  const lengths = [];
  for (let b = 0; b < batch; b++) lengths.push(b < fixed.length ? fixed[b] : 1 + Math.floor(rand() * T));
  return lengths;
}

const CASES = [
  { name: 'batch 1', file: 'tagger.onnx', batch: 1, T: 50, ragged: false },
  { name: 'batch 32', file: 'tagger.onnx', batch: 32, T: 50, ragged: false },
  { name: 'batch 32 ragged', file: 'tagger_packed.onnx', batch: 32, T: 50, ragged: true },
];

function caseLengths(c) {
  return c.ragged ? raggedLengths(c.batch, c.T) : new Array(c.batch).fill(c.T);
}

// The batch as biserve_bench_onnx reads it: "B T", lengths, B x T ids.
function writeBatchFile(file, batch, T, lengths) {
  const lines = [`${batch} ${T}`, lengths.join(' ')];
  for (let b = 0; b < batch; b++) {
    const row = [];
    for (let t = 0; t < T; t++) row.push(tokenId(b, t));
    lines.push(row.join(' '));
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

function log(msg) {
  process.stderr.write(msg + '\n');
}

function nowSeconds() {
  return Number(process.hrtime.bigint()) / 1e9;
}

// One .onnx file, one batch, one intra-op thread count.
class OrtTaggerCase {
  static async create(modelPath, c, lengths, threads, spin = true) {
    const o = new OrtTaggerCase();
    o.c = c;
    o.threads = threads;
    o.session = await ort.InferenceSession.create(modelPath, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      ...(spin ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
    });
    const ids = new BigInt64Array(c.batch * c.T);
    for (let b = 0; b < c.batch; b++) {
      for (let t = 0; t < c.T; t++) ids[b * c.T + t] = BigInt(tokenId(b, t));
    }
    o.feeds = { input: new ort.Tensor('int64', ids, [c.batch, c.T]) };
    if (o.session.inputNames.includes('lengths')) {
      o.feeds.lengths = new ort.Tensor('int64', BigInt64Array.from(lengths.map(BigInt)), [c.batch]);
    } else if (c.ragged) {
      throw new Error(`${modelPath} has no 'lengths' input for a ragged batch`);
    }
    return o;
  }

  // The output [B, T, tags].
  async output() {
    const out = await this.session.run(this.feeds);
    const y = out.output;
    const want = [this.c.batch, this.c.T, TAGGER.tags].join(',');
    if (y.dims.join(',') !== want) throw new Error(`ORT output has shape [${y.dims}], expected [${want}]`);
    return y.data;
  }

  // Wall seconds of one run, and the process CPU seconds (every thread:
  // ORT's pool, the libuv thread node runs it on) it took.
  async runOnce() {
    const c0 = process.cpuUsage();
    const t0 = nowSeconds();
    await this.session.run(this.feeds);
    const wall = nowSeconds() - t0;
    const c = process.cpuUsage(c0);
    return { wall, cpu: (c.user + c.system) / 1e6 };
  }

  async warmup(minTime = 0.2, minRuns = 2) {
    const start = nowSeconds();
    for (let runs = 0; runs < minRuns || nowSeconds() - start < minTime; runs++) await this.runOnce();
  }

  // As ort_bench.js: median seconds per batch over at least minTime seconds
  // and minRuns runs (3 runs if that takes over maxTime seconds), in ms;
  // also the median CPU ms per batch.
  async measure({ minTime = 1, minRuns = 5, maxTime = 6 } = {}) {
    const times = [];
    const start = nowSeconds();
    for (;;) {
      times.push(await this.runOnce());
      const elapsed = nowSeconds() - start;
      if (times.length >= minRuns && elapsed >= minTime) break;
      if (times.length >= 3 && elapsed >= maxTime) break;
    }
    return {
      ms: median(times.map((x) => x.wall)) * 1e3,
      cpu_ms: median(times.map((x) => x.cpu)) * 1e3,
      runs: times.length,
    };
  }

  async release() {
    await this.session.release();
  }
}

// One biserve_bench_onnx run; returns its JSON line, or throws with its
// stderr.
function runBiserve(bin, modelPath, batchFile, threads, { minTime, minRuns, out }) {
  const args = ['--model', modelPath, '--input', batchFile, '--threads', String(threads)];
  args.push('--min_time', String(minTime), '--min_runs', String(minRuns));
  if (out) args.push('--out', out);
  const r = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error((r.stderr || '').trim() || `${bin} exited with ${r.status}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

// ORT's [B, T, tags] against biserve's real steps, in batch order.
function maxAbsDiff(ortOut, biserveOut, lengths, T) {
  const tags = TAGGER.tags;
  let diff = 0;
  let scale = 0;
  let k = 0;
  for (let b = 0; b < lengths.length; b++) {
    for (let t = 0; t < lengths[b]; t++) {
      for (let j = 0; j < tags; j++, k++) {
        const o = ortOut[(b * T + t) * tags + j];
        diff = Math.max(diff, Math.abs(o - biserveOut[k]));
        scale = Math.max(scale, Math.abs(o));
      }
    }
  }
  if (k !== biserveOut.length) throw new Error(`biserve wrote ${biserveOut.length} values, expected ${k}`);
  return { diff, scale, values: k };
}

function tryRun(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch (e) {
    return null;
  }
}

function cpuModel() {
  const out = tryRun('lscpu', []) || '';
  const field = (name) => (new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(out) || [])[1];
  const name = field('Model name') || os.cpus()[0].model;
  const family = field('CPU family');
  return name + (family ? ` (family ${family}, model ${field('Model')})` : '');
}

// biserve_bench's BM_GemmPeak/threads:<n> gflops, if that binary is there.
function gemmPeak(bench, threads, minTime) {
  if (!fs.existsSync(bench)) return null;
  try {
    const out = execFileSync(
      bench,
      [`--benchmark_filter=^BM_GemmPeak/threads:${threads}$`, '--benchmark_format=json', `--benchmark_min_time=${minTime}`],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 },
    );
    const b = JSON.parse(out).benchmarks.find((x) => (x.run_type || 'iteration') === 'iteration');
    return b && typeof b.gflops === 'number' ? b.gflops : null;
  } catch (e) {
    return null;
  }
}

function fmtMs(ms) {
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  if (ms >= 1) return ms.toFixed(2);
  return ms.toFixed(3);
}

function fmtRate(x) {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2), {
    rounds: 5,
    threads: '1,2',
    'min-time': 1,
    build: 'build',
    models: path.join('bench', 'results', 'onnx'),
    filter: '',
    json: '',
    'ort-only': false,
    'ort-no-spin': false,
  });
  ort.env.logLevel = 'error';
  const buildDir = path.resolve(REPO_ROOT, opts.build);
  const bin = path.join(buildDir, 'bin', 'biserve_bench_onnx');
  const modelsDir = path.resolve(REPO_ROOT, opts.models);
  const threadCounts = opts.threads.split(',').map(Number);
  const minTime = opts['min-time'];
  const filter = new RegExp(`^(?:${opts.filter || '.*'})$`);
  const cases = CASES.filter((c) => filter.test(c.name));
  for (const c of CASES) {
    const p = path.join(modelsDir, c.file);
    if (!fs.existsSync(p)) throw new Error(`${p} not found: run /usr/bin/python3 bench/peers/make_onnx_tagger.py`);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'biserve-onnx-'));
  const started = new Date();
  const loadBefore = os.loadavg();

  // 1. The output check.
  let biserveError = opts['ort-only'] ? 'not run (--ort-only)' : null;
  if (!biserveError && !fs.existsSync(bin)) {
    biserveError = `${bin} not found: cmake --build ${opts.build} -j2 --target biserve_bench_onnx`;
  }
  const checks = [];
  for (const c of [CASES[1], CASES[2]]) {
    const lengths = caseLengths(c);
    const modelPath = path.join(modelsDir, c.file);
    const batchFile = path.join(tmp, `check_${c.file}.txt`);
    writeBatchFile(batchFile, c.batch, c.T, lengths);
    const oc = await OrtTaggerCase.create(modelPath, c, lengths, 1);
    const ortOut = await oc.output();
    await oc.release();
    if (biserveError) continue;
    const outFile = path.join(tmp, `check_${c.file}.f32`);
    try {
      runBiserve(bin, modelPath, batchFile, 1, { minTime: 0, minRuns: 1, out: outFile });
    } catch (e) {
      biserveError = e.message;
      continue;
    }
    const buf = fs.readFileSync(outFile);
    const biserveOut = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    const d = maxAbsDiff(ortOut, biserveOut, lengths, c.T);
    checks.push({ c, lengths, ...d });
    log(`check ${c.file}, ${c.name}: max abs difference ${d.diff.toExponential(2)} (max |output| ${d.scale.toFixed(2)})`);
  }
  if (biserveError) log(`biserve: ${biserveError}\n(reporting ONNX Runtime alone)`);

  // 2. Speed. The GEMM peak is measured once per round and thread count
  // too, and the highest reading taken: on a shared machine a reading can
  // only come out low (BM_GemmPeak at 2 threads needs both cores free).
  const peakReadings = {};
  const bench = path.join(buildDir, 'bin', 'biserve_bench');
  const readPeaks = (r) => {
    for (const n of threadCounts) {
      const p = gemmPeak(bench, n, Math.min(minTime, 0.5));
      if (!p) continue;
      (peakReadings[n] = peakReadings[n] || []).push(p);
      log(`round ${r + 1}, BM_GemmPeak/threads:${n}: ${p.toFixed(1)} GFLOP/s`);
    }
  };
  const slots = [];
  for (const c of cases) {
    const lengths = caseLengths(c);
    const modelPath = path.join(modelsDir, c.file);
    const batchFile = path.join(tmp, `speed_${c.name.replace(/ /g, '_')}.txt`);
    writeBatchFile(batchFile, c.batch, c.T, lengths);
    for (const n of threadCounts) {
      const oc = await OrtTaggerCase.create(modelPath, c, lengths, n, !opts['ort-no-spin']);
      await oc.warmup();
      slots.push({ c, n, lengths, modelPath, batchFile, oc, rounds: [] });
    }
  }
  for (let r = 0; r < opts.rounds; r++) {
    readPeaks(r);
    for (const s of slots) {
      const measureOrt = () => s.oc.measure({ minTime, minRuns: 5 });
      const measureBiserve = () =>
        biserveError ? null : runBiserve(bin, s.modelPath, s.batchFile, s.n, { minTime, minRuns: 5 });
      let o;
      let b;
      if (r % 2 === 0) {
        o = await measureOrt();
        b = measureBiserve();
      } else {
        b = measureBiserve();
        o = await measureOrt();
      }
      s.rounds.push({ ort: o, biserve: b, ratio: b ? o.ms / b.ms : null, cpuRatio: b ? o.cpu_ms / b.cpu_ms : null });
      log(
        `round ${r + 1}, ${s.c.name}, threads ${s.n}: ORT ${fmtMs(o.ms)} ms (${o.runs} runs)` +
          (b ? `, biserve ${fmtMs(b.ms)} ms (${b.runs} runs), ratio ${(o.ms / b.ms).toFixed(2)}` : ''),
      );
    }
  }
  for (const s of slots) await s.oc.release();
  fs.rmSync(tmp, { recursive: true, force: true });

  const peaks = {};
  for (const [n, ps] of Object.entries(peakReadings)) peaks[n] = Math.max(...ps);
  const fpt = flopsPerToken();
  const rows = slots.map((s) => {
    const tokens = s.lengths.reduce((a, b) => a + b, 0);
    const padded = s.c.batch * s.c.T;
    const ortMs = median(s.rounds.map((x) => x.ort.ms));
    const row = { s, tokens, padded, ortMs, ortGflops: (fpt * tokens) / ortMs / 1e6 };
    row.ortGflopsPadded = (fpt * padded) / ortMs / 1e6;
    if (!biserveError) {
      const ratios = s.rounds.map((x) => x.ratio);
      row.biserveMs = median(s.rounds.map((x) => x.biserve.ms));
      row.ratio = median(ratios);
      row.ratioMin = Math.min(...ratios);
      row.ratioMax = Math.max(...ratios);
      row.cpuRatio = median(s.rounds.map((x) => x.cpuRatio));
      row.biserveGflops = (fpt * tokens) / row.biserveMs / 1e6;
    }
    return row;
  });

  const pct = (gflops, n) => (n in peaks ? `${((100 * gflops) / peaks[n]).toFixed(0)}%` : '');
  const columns = [
    ['case', (r) => r.s.c.name],
    ['threads', (r) => String(r.s.n)],
    ['tokens', (r) => String(r.tokens)],
  ];
  if (!biserveError) {
    columns.push(
      ['biserve ms', (r) => fmtMs(r.biserveMs)],
      ['ORT ms', (r) => fmtMs(r.ortMs)],
      ['biserve/ORT speed', (r) => r.ratio.toFixed(2)],
      ['min–max', (r) => `${r.ratioMin.toFixed(2)}–${r.ratioMax.toFixed(2)}`],
      ['by CPU time', (r) => r.cpuRatio.toFixed(2)],
      ['biserve GFLOP/s', (r) => fmtRate(r.biserveGflops)],
      ['ORT GFLOP/s', (r) => fmtRate(r.ortGflops) + (r.s.c.ragged ? ` (${fmtRate(r.ortGflopsPadded)} padded)` : '')],
    );
    if (Object.keys(peaks).length) {
      columns.push(['biserve % of peak', (r) => pct(r.biserveGflops, r.s.n)]);
      columns.push(['ORT % of peak', (r) => pct(r.ortGflops, r.s.n)]);
    }
  } else {
    columns.push(
      ['ORT ms', (r) => fmtMs(r.ortMs)],
      ['ORT GFLOP/s', (r) => fmtRate(r.ortGflops) + (r.s.c.ragged ? ` (${fmtRate(r.ortGflopsPadded)} padded)` : '')],
    );
    if (Object.keys(peaks).length) columns.push(['ORT % of peak', (r) => pct(r.ortGflops, r.s.n)]);
  }

  const gitRev = tryRun('git', ['rev-parse', '--short', 'HEAD']);
  const lines = [];
  lines.push(`# ONNX file side by side: biserve vs ONNX Runtime (${started.toISOString()})`);
  lines.push('');
  lines.push(`- CPU: ${cpuModel()}, nproc ${tryRun('nproc', []) || os.cpus().length}`);
  lines.push(
    `- biserve ${gitRev || '?'}, ${path.relative(REPO_ROOT, bin)}` +
      (process.env.OPENBLAS_CORETYPE ? `, OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE}` : ''),
  );
  lines.push(
    `- onnxruntime-node ${ORT_VERSION} (CPU EP), node ${process.version}` +
      (opts['ort-no-spin'] ? ', intra-op spinning off (--ort-no-spin)' : ''),
  );
  lines.push(
    `- model: ${path.relative(REPO_ROOT, modelsDir)}/{tagger,tagger_packed}.onnx (Embedding 5000x128, ` +
      `2-layer BiLSTM 256, Linear 20); ${(fpt / 1e6).toFixed(2)} MFLOP per token`,
  );
  lines.push(
    `- ${opts.rounds} interleaved round(s), ≥${minTime} s and ≥5 runs per measurement; load average ` +
      `${loadBefore[0].toFixed(2)} before, ${os.loadavg()[0].toFixed(2)} after`,
  );
  if (Object.keys(peaks).length) {
    lines.push(
      `- GEMM peak (biserve_bench BM_GemmPeak, highest of one reading per round): ` +
        Object.entries(peaks)
          .map(([n, p]) => `${fmtRate(p)} GFLOP/s at ${n} thread(s) (readings ${peakReadings[n].map(fmtRate).join(', ')})`)
          .join('; '),
    );
  }
  lines.push('');
  if (biserveError) {
    lines.push(`biserve not measured: ${biserveError.split('\n')[0]}`);
  } else {
    lines.push('Output check (max abs difference over the real steps, ORT vs biserve, 1 thread):');
    lines.push('');
    for (const k of checks) {
      const ls = k.c.ragged ? `lengths ${k.lengths.slice(0, 4).join(', ')}, ... (${k.values / TAGGER.tags} tokens)` : `all ${k.c.T}`;
      lines.push(
        `- ${k.c.file}, ${k.c.batch} sequences, ${ls}: ${k.diff.toExponential(2)} ` + `(largest |output| ${k.scale.toFixed(2)})`,
      );
    }
  }
  lines.push('');
  lines.push('| ' + columns.map((c) => c[0]).join(' | ') + ' |');
  lines.push('| ' + columns.map((c, i) => (i === 0 ? '---' : '---:')).join(' | ') + ' |');
  for (const r of rows) lines.push('| ' + columns.map((c) => c[1](r)).join(' | ') + ' |');
  lines.push('');
  lines.push(
    'Times per batch: medians over the rounds. biserve/ORT speed = ORT ms / biserve ms, the median of ' +
      'the per-round ratios (> 1: biserve faster), and its min–max over the rounds. "by CPU time": the ' +
      'same with each side\'s process CPU time per batch (all its threads; at 1 thread it is less ' +
      'disturbed by other load than wall time; at 2 threads it also counts threads spinning while ' +
      'they wait). GFLOP/s count the ' +
      'real tokens; for the ragged batch ORT computes every sequence to the longest length ("padded" ' +
      'counts that work), biserve only the real steps. % of peak: GFLOP/s over the GEMM peak at the same ' +
      'thread count.',
  );
  console.log(lines.join('\n'));

  if (opts.json) {
    const out = rows.map((r) => ({
      case: r.s.c.name,
      threads: r.s.n,
      tokens: r.tokens,
      ortMs: r.ortMs,
      biserveMs: r.biserveMs,
      ratio: r.ratio,
      cpuRatio: r.cpuRatio,
      rounds: r.s.rounds,
    }));
    fs.writeFileSync(
      opts.json,
      JSON.stringify({ date: started.toISOString(), peaks, peakReadings, checks: checks.map((k) => ({ file: k.c.file, diff: k.diff })), rows: out }, null, 2),
    );
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
