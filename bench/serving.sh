#!/usr/bin/env bash
# How much of the evaluation core's speed the server delivers, on W2
# (bidirectional LSTM, 128 units, 64 inputs, 50-step sequences), one CPU
# each: the core is biserve_bench's BM_Bidirectional/W2/threads:1 (batches
# of 32) pinned to CPU 0; the server is biserve_server --threads 1 pinned to
# CPU 0, loaded by biserve_loadtest pinned to CPU 1 (one sequence per
# request, closed loop at concurrency 64 and 8).
#   bench/serving.sh [--profile] [rounds=5] [duration_s=10]
# Interleaved rounds: core, then server at 64, then server at 8; one server
# process for all rounds, idle while the core runs. Prints a line per round,
# then the medians over rounds as a Markdown table, ending with
#   serving/core ratio, concurrency 64: 0.xx (median of N rounds)
# Raw JSONs and the server log go to bench/results/serving/. --profile (or
# SERVING_PROFILE=1) also records `perf record -g` of the server during one
# extra, unmeasured C=64 run into bench/results/serving/profile.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${SERVING_PROFILE:-0}
if [ "${1:-}" = --profile ]; then
  profile=1
  shift
fi
rounds=${1:-5}
duration=${2:-10}
warmup=2
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]] || ! [[ $duration =~ ^[0-9]*\.?[0-9]+$ ]]; then
  echo "usage: bench/serving.sh [--profile] [rounds=5] [duration_s=10]" >&2
  exit 2
fi

# W2, as in bench/workloads.cc, and its FLOPs per request (one sequence):
# 2 directions x steps x 2 FLOPs per multiply-add x 4 LSTM gates x units x
# (inputs + units) = 2 x 50 x 2 x 4 x 128 x 192 = 19,660,800, the same
# formula as FlopsPerStep() in bench/workloads.cc (times the steps) from
# which biserve_bench computes its gflops counter.
steps=50 inputs=64 units=128 gates=4
flops_per_request=$((2 * steps * 2 * gates * units * (inputs + units)))
model=w2_lstm
core_benchmark='BM_Bidirectional/W2/threads:1'

for bin in biserve_bench biserve_server biserve_loadtest; do
  if [ ! -x "build/bin/$bin" ]; then
    echo "serving.sh: build/bin/$bin is missing: run scripts/build.sh first" >&2
    exit 1
  fi
done
if [ ! -d "bench/models/$model" ]; then
  echo "serving.sh: bench/models/$model is missing: run bench/make_models.sh" >&2
  exit 1
fi
if ! command -v taskset >/dev/null; then
  echo "serving.sh: taskset is missing (Debian package util-linux)" >&2
  exit 1
fi
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3 || true)
if [ -z "$python" ]; then
  echo "serving.sh: python3 is missing (it parses the JSON reports)" >&2
  exit 1
fi
if [ "$profile" = 1 ] && ! command -v perf >/dev/null; then
  echo "serving.sh: --profile needs perf: apt-get install linux-perf" >&2
  echo "  (Debian; on Ubuntu linux-tools-generic). Measuring without it." >&2
  profile=0
fi

out=bench/results/serving
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt "$out"/*.log "$out"/perf.data*

server= perf_pid=
cleanup() {
  if [ -n "$perf_pid" ] && kill -0 "$perf_pid" 2>/dev/null; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
  fi
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$server" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --port 0: the server binds a free port itself (no race with other
# programs) and names it in its "listening on host:port" log line.
taskset -c 0 build/bin/biserve_server --model_repository bench/models \
  --port 0 --metrics_port 0 --threads 1 2>"$out/server.log" &
server=$!
for _ in $(seq 300); do
  grep -q " ready: " "$out/server.log" && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "serving.sh: the server exited during start-up; its log:" >&2
    cat "$out/server.log" >&2
    server=
    exit 1
  fi
  sleep 0.1
done
if ! grep -q " ready: " "$out/server.log"; then
  echo "serving.sh: the server was not ready after 30 s; its log:" >&2
  cat "$out/server.log" >&2
  exit 1
fi
port=$(sed -n 's/.* listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' \
  "$out/server.log" | head -1)
if [ -z "$port" ]; then
  echo "serving.sh: no port in the server's 'listening on' line:" >&2
  cat "$out/server.log" >&2
  exit 1
fi

# The server's CPU seconds so far (utime + stime of all its threads).
clock_ticks=$(getconf CLK_TCK)
server_cpu_s() {
  awk -v hz="$clock_ticks" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' \
    "/proc/$server/stat"
}

# One closed-loop run at concurrency $1 into $out/$2.{json,txt}, plus the
# server's CPU use over it in $out/$2.server.json.
loadtest() {
  local concurrency=$1 name=$2 cpu0 cpu1 t0 t1
  cpu0=$(server_cpu_s)
  t0=$(date +%s.%N)
  if ! taskset -c 1 build/bin/biserve_loadtest --server "localhost:$port" \
    --model "$model" --concurrency "$concurrency" --seq_len "$steps" \
    --batch 1 --duration_s "$duration" --warmup_s "$warmup" \
    --out "$out/$name.json" >"$out/$name.txt" 2>"$out/$name.err"; then
    echo "serving.sh: biserve_loadtest failed at concurrency $concurrency:" >&2
    cat "$out/$name.txt" "$out/$name.err" >&2
    echo "server log ($out/server.log), last lines:" >&2
    tail -5 "$out/server.log" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  cpu1=$(server_cpu_s)
  echo "{\"server_cpu_s\": $(awk "BEGIN { print $cpu1 - $cpu0 }"), \"wall_s\": $(awk "BEGIN { print $t1 - $t0 }")}" \
    >"$out/$name.server.json"
}

# Reads the JSONs of round(s) and prints one round's line (`round R`) or
# the summary (`summary`). Client CPU per request: the loadtest's
# client_cpu_s and wall_s cover its whole run, warm-up included, while
# throughput_rps covers the measured part only; so requests over the whole
# run are estimated as throughput_rps x wall_s (the warm-up's rate assumed
# the same). Server CPU: its utime + stime over the loadtest's lifetime.
report=$(cat <<'PY'
import json, statistics, sys
out, flops, rounds, duration = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
CONCURRENCIES = (64, 8)

def load(path):
    with open(path) as f:
        return json.load(f)

def core(r):
    doc = load(f"{out}/core-r{r}.json")
    for bm in doc["benchmarks"]:
        if bm["name"] == sys.argv[6] and bm.get("run_type", "iteration") == "iteration":
            if bm.get("error_occurred"):
                sys.exit(f"serving.sh: {bm['name']}: {bm.get('error_message')}")
            return {"gflops": bm["gflops"], "seq_per_s": bm["seq_per_s"],
                    "kernel": doc.get("context", {}).get("gemm_kernels", "?")}
    sys.exit(f"serving.sh: no {sys.argv[6]} in {out}/core-r{r}.json")

def served(r, c, core_gflops):
    name = f"{out}/loadtest-c{c}-r{r}"
    lt, srv = load(name + ".json"), load(name + ".server.json")
    rps = lt["throughput_rps"]
    requests = rps * lt["wall_s"]
    gflops = rps * flops / 1e9
    return {
        "rps": rps, "gflops": gflops, "ratio": gflops / core_gflops,
        "p50": lt["latency_ms"]["p50"], "p99": lt["latency_ms"]["p99"],
        "client_us": 1e6 * lt["client_cpu_s"] / requests if requests else float("nan"),
        "client_util": lt["client_cpu_s"] / lt["wall_s"] if lt["wall_s"] else float("nan"),
        "server_util": srv["server_cpu_s"] / srv["wall_s"] if srv["wall_s"] else float("nan"),
        "errors": lt["errors"],
    }

def first_error(r, c):
    with open(f"{out}/loadtest-c{c}-r{r}.txt") as f:
        return [l.strip() for l in f if "first error" in l]

if sys.argv[1] == "round":
    r = rounds
    k = core(r)
    parts = [f"round {r}: core {k['gflops']:.1f} GFLOP/s ({k['seq_per_s']:.0f} seq/s)"]
    for c in CONCURRENCIES:
        s = served(r, c, k["gflops"])
        parts.append(
            f"C={c}: {s['rps']:.0f} req/s {s['gflops']:.1f} GFLOP/s = {s['ratio']:.2f} of core, "
            f"p50 {s['p50']:.2f} p99 {s['p99']:.2f} ms, client {s['client_us']:.0f} us/req "
            f"{100 * s['client_util']:.0f}% CPU, server {100 * s['server_util']:.0f}% CPU")
        if s["errors"]:
            print(f"serving.sh: round {r}, concurrency {c}: loadtest errors {s['errors']}",
                  *first_error(r, c), sep="\n  ", file=sys.stderr)
    print(" | ".join(parts), flush=True)
    sys.exit(0)

med = statistics.median
cores = [core(r) for r in range(1, rounds + 1)]
core_gflops = med(k["gflops"] for k in cores)
rows = {c: [served(r, c, cores[r - 1]["gflops"]) for r in range(1, rounds + 1)]
        for c in CONCURRENCIES}
print()
print(f"W2 (bidirectional LSTM 128 units, 64 inputs, 50 steps), one CPU each; "
      f"GEMM kernels {cores[0]['kernel']}; median of {rounds} interleaved rounds "
      f"({duration} s measured per server run). Core: biserve_bench "
      f"{sys.argv[6]} (batches of 32) on CPU 0; server: biserve_server --threads 1 "
      f"on CPU 0, one sequence per request from biserve_loadtest on CPU 1 "
      f"({flops / 1e6:.4f} MFLOP per request).")
print()
print("| run | seq/s | GFLOP/s | vs core | p50 ms | p99 ms | client CPU us/req | client CPU | server CPU |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
print(f"| core, batch 32 | {med(k['seq_per_s'] for k in cores):.0f} | {core_gflops:.1f} "
      f"| 1.00 | | | | | |")
for c in CONCURRENCIES:
    m = {key: med(s[key] for s in rows[c]) for key in rows[c][0] if key != "errors"}
    print(f"| server, concurrency {c} | {m['rps']:.0f} | {m['gflops']:.1f} | {m['ratio']:.2f} "
          f"| {m['p50']:.2f} | {m['p99']:.2f} | {m['client_us']:.0f} "
          f"| {100 * m['client_util']:.0f}% | {100 * m['server_util']:.0f}% |")
errors = {c: sum(sum(s["errors"].values()) for s in rows[c]) for c in CONCURRENCIES}
if any(errors.values()):
    print(f"\nloadtest errors (all rounds): {errors}")
print()
for c in CONCURRENCIES:
    ratios = [s["ratio"] for s in rows[c]]
    print(f"serving/core ratio, concurrency {c}: {med(ratios):.2f} (median of {rounds} rounds)")
PY
)

echo "# serving.sh: $rounds round(s), ${duration} s per server run; server pid $server on" \
  "port $port; raw results in $out/"
for ((r = 1; r <= rounds; r++)); do
  # The core while the server is idle (the load test is not running).
  if ! taskset -c 0 build/bin/biserve_bench \
    --benchmark_filter="^${core_benchmark}\$" --benchmark_format=json \
    >"$out/core-r$r.json" 2>"$out/core-r$r.log"; then
    echo "serving.sh: biserve_bench failed:" >&2
    cat "$out/core-r$r.log" >&2
    exit 1
  fi
  for c in 64 8; do
    loadtest "$c" "loadtest-c$c-r$r"
  done
  "$python" -c "$report" round "$out" "$flops_per_request" "$r" "$duration" \
    "$core_benchmark"
done
"$python" -c "$report" summary "$out" "$flops_per_request" "$rounds" \
  "$duration" "$core_benchmark"

if [ "$profile" = 1 ]; then
  echo
  echo "# profile: perf record -g of the server over one more run at concurrency 64 (not in the figures above)"
  perf record -g -o "$out/perf.data" -p "$server" 2>"$out/perf-record.log" &
  perf_pid=$!
  sleep 0.5
  if ! kill -0 "$perf_pid" 2>/dev/null; then
    wait "$perf_pid" || true
    perf_pid=
    echo "serving.sh: perf record failed (perf_event_paranoid? a container?):" >&2
    cat "$out/perf-record.log" >&2
    exit 1
  fi
  loadtest 64 loadtest-c64-profile
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  perf_pid=
  perf report -i "$out/perf.data" --no-children --percent-limit 1 --stdio \
    >"$out/profile.txt" 2>"$out/perf-report.log"
  echo "# top entries (self time; call graphs in $out/profile.txt):"
  grep -E '^ +[0-9.]+%' "$out/profile.txt" | head -25
fi
