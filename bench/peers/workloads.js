'use strict';
// The workloads of bench/workloads.cc (biserve_bench), and the W5 sequence
// lengths exactly as biserve_bench draws them.

// length 0: lengths uniform in 1..200, drawn as biserve_bench does (seed 7).
const WORKLOADS = [
  { name: 'W1', cell: 'lstm', input: 16, units: 32, length: 20, batch: 1 },
  { name: 'W1b', cell: 'lstm', input: 64, units: 128, length: 50, batch: 1 },
  { name: 'W2', cell: 'lstm', input: 64, units: 128, length: 50, batch: 32 },
  { name: 'W3', cell: 'lstm', input: 256, units: 256, length: 100, batch: 64 },
  { name: 'W3g', cell: 'gru', input: 256, units: 256, length: 100, batch: 64 },
  { name: 'W4', cell: 'lstm', input: 512, units: 512, length: 200, batch: 32 },
  { name: 'W5', cell: 'lstm', input: 256, units: 256, length: 0, batch: 64 },
];

function gateCount(cell) {
  return { lstm: 4, gru: 3 }[cell];
}

// FLOPs of one time step of one sequence, both directions:
// 2 directions x 2 x G x units x (input + units), as biserve_bench counts.
function flopsPerStep(w) {
  return 2 * 2 * gateCount(w.cell) * w.units * (w.input + w.units);
}

// std::mt19937 (the standard fully specifies it).
class Mt19937 {
  constructor(seed) {
    this.mt = new Uint32Array(624);
    this.mt[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const p = this.mt[i - 1] ^ (this.mt[i - 1] >>> 30);
      this.mt[i] = (Math.imul(1812433253, p) + i) >>> 0;
    }
    this.index = 624;
  }

  next() {
    const mt = this.mt;
    if (this.index >= 624) {
      for (let i = 0; i < 624; i++) {
        const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
        mt[i] = mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.index = 0;
    }
    let y = mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

// std::uniform_int_distribution<int>(lo, hi)(mt19937) as libstdc++ (GCC 11 and
// later) computes it: Lemire's nearly divisionless method with 64-bit
// products. The distribution is not specified by the standard; compare.js
// checks the resulting total against biserve_bench's own counters.
function uniformInt(rng, lo, hi) {
  const range = hi - lo + 1;
  const TWO32 = 4294967296;
  let product = rng.next() * range; // < 2^40: exact in a double
  let low = product % TWO32;
  if (low < range) {
    const threshold = (TWO32 - range) % range;
    while (low < threshold) {
      product = rng.next() * range;
      low = product % TWO32;
    }
  }
  return lo + Math.floor(product / TWO32);
}

// The W5 lengths, as WorkloadLengths() in bench/workloads.cc draws them: one
// std::mt19937 seeded with 7, batch consecutive draws of
// uniform_int_distribution<int>(1, 200).
function workloadLengths(w) {
  if (w.length > 0) return new Array(w.batch).fill(w.length);
  const rng = new Mt19937(7);
  const lengths = [];
  for (let i = 0; i < w.batch; i++) lengths.push(uniformInt(rng, 1, 200));
  return lengths;
}

// Selects workloads whose name fully matches the regular expression `filter`
// (e.g. "W2", "W1.*", "W3|W3g"); all when filter is empty.
function selectWorkloads(filter) {
  if (!filter) return WORKLOADS;
  const re = new RegExp('^(?:' + filter + ')$');
  const picked = WORKLOADS.filter((w) => re.test(w.name));
  if (!picked.length) {
    const names = WORKLOADS.map((w) => w.name).join(', ');
    throw new Error(`--filter ${filter} matches no workload (${names})`);
  }
  return picked;
}

module.exports = { WORKLOADS, gateCount, flopsPerStep, workloadLengths, selectWorkloads };
