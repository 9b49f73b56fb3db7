#!/usr/bin/env bash
# Installs what is missing, builds, and serves the bundled example models
# (models/): gRPC on port 8001, Prometheus metrics on 8002. Extra arguments
# go to biserve_server. As with Triton's --grpc-port and --metrics-port, the
# two ports are separate flags: a second server next to the first needs both,
#   scripts/serve.sh --port 9001 --metrics_port 9002 --threads 4
# (--metrics_port 0 picks a free port, named in the log's "listening on").
set -euo pipefail
cd "$(dirname "$0")/.."

# The ports this server will listen on, from the arguments (--flag=value or
# --flag value; the last one wins, as for the server).
port=8001
metrics_port=8002
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --port=*) port="${args[i]#*=}" ;;
    --metrics_port=*) metrics_port="${args[i]#*=}" ;;
    --port) port="${args[i + 1]:-}" ;;
    --metrics_port) metrics_port="${args[i + 1]:-}" ;;
  esac
done

# Something already listening on 127.0.0.1:$1 (a connection succeeds)?
in_use() {
  [ "$1" != 0 ] && (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null
}
if in_use "$port"; then
  echo "serve.sh: gRPC port $port is in use (another biserve_server?);" \
    "choose another with --port (0: a free one)" >&2
  exit 1
fi
if in_use "$metrics_port"; then
  echo "serve.sh: metrics port $metrics_port is in use (another" \
    "biserve_server?); give this server its own with --metrics_port" \
    "(e.g. scripts/serve.sh --port 9001 --metrics_port 9002; 0: a free" \
    "one)" >&2
  exit 1
fi

scripts/install-deps.sh
scripts/build.sh
exec build/bin/biserve_server --model_repository models "$@"
