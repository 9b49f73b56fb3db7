#!/usr/bin/env bash
# Batching on vs off, measured with the load-test client against the real
# server: one W2 sequence (50 steps, 64 inputs, LSTM 128 units) per request,
# closed loop at concurrency 1, 8 and 64.
#   bench/batching.sh [duration_s] [extra biserve_server flags...]
# Prints one table per setting and writes bench/results/batching-{on,off}.json.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
shift || true
mkdir -p bench/results
for batching in on off; do
  port=$((18000 + RANDOM % 1000))
  enable=true
  [ "$batching" = off ] && enable=false
  build/bin/biserve_server --model_repository bench/models --port "$port" \
    --metrics_port 0 --enable_batching="$enable" "$@" 2> "bench/results/server-$batching.log" &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    grep -q " ready: " "bench/results/server-$batching.log" && break
    sleep 0.1
  done
  echo "== batching $batching"
  build/bin/biserve_loadtest --server "localhost:$port" --model w2_lstm \
    --seq_len 50 --batch 1 --sweep 1,8,64 --duration_s "$duration" \
    --warmup_s 2 --out "bench/results/batching-$batching.json"
  kill -TERM $server
  wait $server || true
done
