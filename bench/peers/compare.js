'use strict';
// biserve against ONNX Runtime on biserve_bench's workloads. From the repo
// root:
//
//   node bench/peers/compare.js [--rounds 5] [--filter W2] [--threads 1,2]
//                               [--min-time 1] [--bench build/bin/biserve_bench]
//                               [--json out.json] [--bf16=false]
//
// For each workload and thread count it alternates, for --rounds rounds, one
// biserve_bench measurement (a child process, Google Benchmark, --min-time
// seconds) and one ONNX Runtime measurement (this process, median of runs
// over at least --min-time seconds and 5 runs), swapping which goes first
// every round. The ratio is ORT time / biserve time per round; the table shows
// the median of those ratios, and the median times of the rounds. Each round
// also measures biserve's bf16 run of the workload
// (BM_Bidirectional/<w>/threads:<n>/bf16, weights in bfloat16, float32
// accumulation) for the bf16 columns: its time, ORT time / bf16 time, and
// biserve fp32 time / bf16 time. On a CPU without AVX512_BF16 those columns
// say n/a and the header says why; --bf16=false leaves them out. Progress
// goes to stderr, the report (one markdown table) to stdout.

const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require('onnxruntime-node');
const { OrtCase, ORT_VERSION, median, parseArgs } = require('./ort_bench');
const { flopsPerStep, workloadLengths, selectWorkloads } = require('./workloads');

const REPO_ROOT = path.resolve(__dirname, '..', '..');

function log(msg) {
  process.stderr.write(msg + '\n');
}

function toMs(value, unit) {
  return value * { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3 }[unit];
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts });
}

function tryRun(cmd, args, opts) {
  try {
    return run(cmd, args, opts).trim();
  } catch (e) {
    return null;
  }
}

// One Google Benchmark run of exactly one benchmark; returns its JSON entry.
// --benchmark_min_time is a plain number of seconds: Google Benchmark 1.7
// (Debian 12) ignores a value with an "s" suffix; 1.8+ still reads plain
// numbers as seconds.
function runGoogleBenchmark(bench, name, minTime) {
  const out = run(bench, [
    `--benchmark_filter=^${name}$`,
    '--benchmark_format=json',
    `--benchmark_min_time=${minTime}`,
  ]);
  const json = JSON.parse(out);
  const b = json.benchmarks.find((x) => x.name === name && (x.run_type || 'iteration') === 'iteration');
  if (!b) throw new Error(`${bench}: no result for ${name}`);
  if (b.error_occurred) throw new Error(`${name}: ${b.error_message}`);
  return b;
}

function runBiserve(bench, w, threads, minTime, suffix = '') {
  const name = `BM_Bidirectional/${w.name}/threads:${threads}${suffix}`;
  const b = runGoogleBenchmark(bench, name, minTime);
  return {
    ms: toMs(b.real_time, b.time_unit),
    gflops: b.gflops,
    seq_per_s: b.seq_per_s,
    iterations: b.iterations,
    // Real steps per batch, as biserve_bench counted them.
    steps: (b.gflops * 1e9 * w.batch) / (b.seq_per_s * flopsPerStep(w)),
  };
}

// biserve's GEMM peak benchmark for a thread count, if biserve_bench has one:
// a name starting BM_GemmPeak, the one ending threads:<n> if there are
// several. Its `gflops` counter is the peak.
function gemmPeakBenchmark(tests, threads) {
  const peaks = tests.filter((t) => t.startsWith('BM_GemmPeak'));
  const own = peaks.find((t) => new RegExp(`threads:${threads}(/|$)`).test(t));
  return own || (peaks.length === 1 ? peaks[0] : null);
}

// Model name, family/model and the widest vector extension, from /proc/cpuinfo.
function cpuModel() {
  let info;
  try {
    info = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch (e) {
    return os.cpus()[0].model;
  }
  const field = (name) => (new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(info) || [])[1];
  const flags = (field('flags') || '').split(' ');
  const simd = ['avx512f', 'avx2', 'avx'].find((f) => flags.includes(f));
  const family = field('cpu family');
  return (
    (field('model name') || os.cpus()[0].model) +
    (family ? ` (family ${family}, model ${field('model')})` : '') +
    (simd ? `, ${simd}` : '')
  );
}

// CMAKE_BUILD_TYPE of the build tree the benchmark binary is in, if found.
function cmakeBuildType(bench) {
  for (let dir = path.dirname(bench), i = 0; i < 3; i++, dir = path.dirname(dir)) {
    const cache = path.join(dir, 'CMakeCache.txt');
    if (fs.existsSync(cache)) {
      const m = /^CMAKE_BUILD_TYPE:\w+=(.*)$/m.exec(fs.readFileSync(cache, 'utf8'));
      return m ? m[1] : null;
    }
  }
  return null;
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
    filter: '',
    threads: '1,2',
    'min-time': 1,
    bench: '',
    json: '',
    bf16: true,
  });
  const bench = opts.bench ? path.resolve(opts.bench) : path.join(REPO_ROOT, 'build', 'bin', 'biserve_bench');
  if (!fs.existsSync(bench)) {
    throw new Error(`${bench} not found: build it with\n  cmake --build build -j2 --target biserve_bench`);
  }
  const threadCounts = opts.threads.split(',').map(Number);
  const workloads = selectWorkloads(opts.filter);
  const minTime = opts['min-time'];
  ort.env.logLevel = 'error';

  const started = new Date();
  const loadBefore = os.loadavg();
  // OPENBLAS_VERBOSE=2 makes OpenBLAS (if biserve links it) name the kernel
  // set it picked for this CPU; it goes in the header.
  const listing = spawnSync(bench, ['--benchmark_list_tests'], {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_VERBOSE: '2' },
  });
  if (listing.status !== 0) throw new Error(`${bench} --benchmark_list_tests failed: ${listing.stderr}`);
  const tests = listing.stdout.split('\n').filter((t) => t && !t.startsWith('Core:'));
  const blasCore = /^Core: (.*)$/m.exec(listing.stdout + listing.stderr);

  // GEMM peak per thread count, measured once up front (if available).
  const gemmPeak = {};
  for (const n of threadCounts) {
    const name = gemmPeakBenchmark(tests, n);
    if (!name) continue;
    const b = runGoogleBenchmark(bench, name, minTime);
    if (typeof b.gflops === 'number') gemmPeak[n] = b.gflops;
    log(`${name}: ${b.gflops} GFLOP/s`);
  }
  const hasGemmPeak = threadCounts.some((n) => n in gemmPeak);
  // Whether biserve_bench can run bf16 here: its first bf16 benchmark says
  // (skipped with the reason on a CPU without AVX512_BF16).
  let bf16Unavailable = '';
  if (opts.bf16 && workloads.length > 0) {
    try {
      runBiserve(bench, workloads[0], threadCounts[0], 0.01, '/bf16');
    } catch (e) {
      bf16Unavailable = e.message;
      log(`bf16 columns: n/a (${bf16Unavailable})`);
    }
  }
  const withBf16 = opts.bf16 && !bf16Unavailable;

  const rows = [];
  for (const w of workloads) {
    const lengths = workloadLengths(w);
    const steps = lengths.reduce((a, b) => a + b, 0);
    for (const n of threadCounts) {
      const oc = await OrtCase.create(w, n);
      await oc.warmup();
      const rounds = [];
      for (let r = 0; r < opts.rounds; r++) {
        const measureOrt = () => oc.measure({ minTime, minRuns: 5 });
        const measureBiserve = () => runBiserve(bench, w, n, minTime);
        const measureBf16 = () => (withBf16 ? runBiserve(bench, w, n, minTime, '/bf16') : null);
        let o;
        let b;
        let h;
        if (r % 2 === 0) {
          b = measureBiserve();
          h = measureBf16();
          o = await measureOrt();
        } else {
          o = await measureOrt();
          h = measureBf16();
          b = measureBiserve();
        }
        if (Math.abs(b.steps - steps) > 0.005 * steps) {
          log(`warning: ${w.name}: biserve_bench counts ${b.steps.toFixed(0)} steps, this script ${steps}`);
        }
        rounds.push({ biserve: b, ort: o, bf16: h, ratio: o.ms / b.ms });
        log(
          `${w.name}/threads:${n} round ${r + 1}: biserve ${fmtMs(b.ms)} ms (${b.iterations} it), ` +
            (h ? `bf16 ${fmtMs(h.ms)} ms, ` : '') +
            `ORT ${fmtMs(o.ms)} ms (${o.runs} runs), ratio ${(o.ms / b.ms).toFixed(2)}`,
        );
      }
      await oc.release();
      const biserveMs = median(rounds.map((x) => x.biserve.ms));
      const ortMs = median(rounds.map((x) => x.ort.ms));
      const ratios = rounds.map((x) => x.ratio);
      const flops = flopsPerStep(w) * steps; // per batch, real steps
      const paddedFlops = flopsPerStep(w) * Math.max(...lengths) * w.batch;
      rows.push({
        w,
        threads: n,
        ragged: w.length === 0,
        biserveMs,
        ortMs,
        ratio: median(ratios),
        ratioMin: Math.min(...ratios),
        ratioMax: Math.max(...ratios),
        bf16Ms: withBf16 ? median(rounds.map((x) => x.bf16.ms)) : NaN,
        ortOverBf16: withBf16 ? median(rounds.map((x) => x.ort.ms / x.bf16.ms)) : NaN,
        fp32OverBf16: withBf16 ? median(rounds.map((x) => x.biserve.ms / x.bf16.ms)) : NaN,
        biserveGflops: flops / biserveMs / 1e6,
        ortGflops: flops / ortMs / 1e6,
        ortGflopsPadded: paddedFlops / ortMs / 1e6,
        rounds,
      });
    }
  }

  // The table. Adding a column is one entry here.
  const columns = [
    ['workload', (r) => r.w.name],
    ['threads', (r) => String(r.threads)],
    ['biserve ms', (r) => fmtMs(r.biserveMs)],
    ['ORT ms', (r) => fmtMs(r.ortMs)],
    ['ratio (ORT/biserve)', (r) => r.ratio.toFixed(2)],
    ['ratio min–max', (r) => `${r.ratioMin.toFixed(2)}–${r.ratioMax.toFixed(2)}`],
    ['biserve GFLOP/s', (r) => fmtRate(r.biserveGflops)],
    ['ORT GFLOP/s', (r) => fmtRate(r.ortGflops) + (r.ragged ? ` (${fmtRate(r.ortGflopsPadded)} padded)` : '')],
  ];
  if (opts.bf16) {
    const na = (f) => (r) => (withBf16 ? f(r) : 'n/a');
    columns.push(
      ['biserve bf16 ms', na((r) => fmtMs(r.bf16Ms))],
      ['ratio (ORT/bf16)', na((r) => r.ortOverBf16.toFixed(2))],
      ['bf16 speed-up (fp32/bf16)', na((r) => r.fp32OverBf16.toFixed(2))],
    );
  }
  const pctOfPeak = (r) => (r.threads in gemmPeak ? `${((100 * r.biserveGflops) / gemmPeak[r.threads]).toFixed(0)}%` : '');
  if (hasGemmPeak) columns.push(['% of GEMM peak', pctOfPeak]);

  const buildType = cmakeBuildType(bench);
  const gitRev = tryRun('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT });
  const gitDirty = tryRun('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO_ROOT });
  const lines = [];
  lines.push(`# biserve vs ONNX Runtime (${started.toISOString()})`);
  lines.push('');
  lines.push(`- CPU: ${cpuModel()}, nproc ${tryRun('nproc', []) || os.cpus().length}`);
  lines.push(
    `- biserve ${gitRev || '?'}${gitDirty ? ' (uncommitted changes)' : ''}, ` +
      (bench.startsWith(REPO_ROOT + path.sep) ? path.relative(REPO_ROOT, bench) : bench) +
      (buildType ? ` (CMAKE_BUILD_TYPE ${buildType})` : '') +
      (blasCore ? `, OpenBLAS kernels: ${blasCore[1]}` : ''),
  );
  lines.push(`- onnxruntime-node ${ORT_VERSION} (CPU EP), node ${process.version}`);
  if (bf16Unavailable) lines.push(`- bf16 columns n/a: ${bf16Unavailable}`);
  lines.push(
    `- ${opts.rounds} interleaved round(s), ≥${minTime} s per measurement; load average ` +
      `${loadBefore[0].toFixed(2)} before, ${os.loadavg()[0].toFixed(2)} after`,
  );
  if (hasGemmPeak) {
    const peaks = threadCounts.filter((n) => n in gemmPeak).map((n) => `${fmtRate(gemmPeak[n])} at ${n} thread(s)`);
    lines.push(`- biserve GEMM peak (BM_GemmPeak, measured once before the rounds): ${peaks.join(', ')} GFLOP/s`);
  }
  lines.push('');
  lines.push('| ' + columns.map((c) => c[0]).join(' | ') + ' |');
  lines.push('| ' + columns.map((c, i) => (i === 0 ? '---' : '---:')).join(' | ') + ' |');
  for (const r of rows) lines.push('| ' + columns.map((c) => c[1](r)).join(' | ') + ' |');
  lines.push('');
  lines.push(
    'ratio > 1: biserve faster. Times are per batch (median of rounds); GFLOP/s use ' +
      '2 directions × steps × 2 × G × units × (input + units) with real (unpadded) steps. ' +
      'For ragged batches ORT pads to the longest sequence; "padded" counts those steps too.',
  );
  console.log(lines.join('\n'));

  if (opts.json) {
    const out = rows.map((r) => ({ ...r, w: r.w.name }));
    fs.writeFileSync(opts.json, JSON.stringify({ date: started.toISOString(), gemmPeak, rows: out }, null, 2));
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
