#!/usr/bin/env bash
# Writes the benchmark model repository (bench/models/) from the workloads in
# bench/workloads.cc: random weights with a fixed seed, so the files only
# change when the workloads do. Run after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/models/w2_lstm/1
build/bin/biserve_bench_model --workload W2 --out bench/models/w2_lstm/1/model.pb
