#!/usr/bin/env bash
# Two builds of biserve_bench side by side, interleaved: A, B, A, B, ...
# (ROUNDS rounds, default 5), each run one repetition of every benchmark
# the filter selects; prints each benchmark's median real time for A and B
# and B/A. For "did this change slow anything down": build the old commit
# in its own tree (git worktree add ../old <commit>) and compare.
#   bench/ab.sh OLD/bin/biserve_bench build/bin/biserve_bench \
#       'BM_Bidirectional/.*'
# Medians, since the machine may be shared; under 3% apart is noise here.
# TIME=cpu_time compares CPU time instead of real time (fairer for one
# thread when other work shares the cores).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,11p' "$0"
  exit 2
fi
a=$1 b=$2 filter=${3:-BM_Bidirectional/.*} rounds=${ROUNDS:-5}
time_field=${TIME:-real_time}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for side in a b; do
    bin=$a
    [ "$side" = b ] && bin=$b
    "$bin" --benchmark_filter="$filter" --benchmark_format=json \
      --benchmark_min_time=0.5 >"$out/$side.$r.json" 2>/dev/null
  done
  echo "ab: round $r of $rounds done" >&2
done
python3 - "$out" "$rounds" "$time_field" <<'PY'
import json, statistics, sys
out, rounds, field = sys.argv[1], int(sys.argv[2]), sys.argv[3]
times = {"a": {}, "b": {}}
for side in times:
    for r in range(1, rounds + 1):
        for bm in json.load(open(f"{out}/{side}.{r}.json"))["benchmarks"]:
            times[side].setdefault(bm["name"], []).append(
                bm[field] * {"ns": 1e-6, "us": 1e-3, "ms": 1, "s": 1e3}[bm["time_unit"]])
print(f"{'benchmark (' + field + ')':40} {'A ms':>10} {'B ms':>10} {'B/A':>6}")
for name, a in times["a"].items():
    b = times["b"].get(name)
    if not b:
        continue
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{name:40} {ma:10.3f} {mb:10.3f} {mb / ma:6.3f}")
PY
