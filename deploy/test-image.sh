#!/usr/bin/env bash
# Builds the Dockerfile, runs the image and checks it from the host:
#   deploy/test-image.sh            # build, then test
#   SKIP_BUILD=1 deploy/test-image.sh   # test an image built before
#
# 1. Builds IMAGE (default localhost/biserve:test) from the repository root:
#    with `podman build` or `docker build`, or with the command named by
#    IMAGE_BUILDER (called as `$IMAGE_BUILDER --prepare`, then
#    `$IMAGE_BUILDER . $IMAGE`: for machines without a Docker engine or a
#    registry, whose builder provides the debian:bookworm base locally).
# 2. Runs it with --network host, a read-only root file system and only
#    `--port=P --metrics_port=M` as arguments (free loopback ports), so the
#    defaults of the ENTRYPOINT (the bundled /models) serve.
# 3. Waits for gRPC health SERVING; calls Predict on the bundled "brackets"
#    model from the host and checks the answer; scrapes /metrics from the
#    host and checks that biserve_requests_total counted that request; runs
#    the image's HEALTHCHECK; checks the server runs as a non-root user.
# 4. Stops the container (SIGTERM) and checks that the server drained and
#    exited 0; fails if the image is larger than MAX_IMAGE_MB (150, in MB of
#    10^6 bytes as podman and docker print them).
# 5. Runs the image once more on a repository mounted over /models holding
#    a PyTorch export (tests/onnx/fixtures/tagger.onnx as tagger/1/
#    model.onnx, when the fixture is there) and checks that ListModels shows
#    it AVAILABLE: the runtime stage has what the ONNX import needs. A
#    Keras fixture beside it (keras_tagger/1/model.keras) must be AVAILABLE
#    too: the image ships biserve_keras_import, which reads it.
#
# The host client is build/bin/biserve when it exists; otherwise the same
# client runs from the image in a second host-network container. Root (or
# sudo) is needed for podman here (rootful). On Debian, podman (when neither
# it nor docker is there) and curl are installed with apt-get if missing.
# Environment: IMAGE, SKIP_BUILD=1, IMAGE_BUILDER,
# ENGINE=podman|docker, MAX_IMAGE_MB, STOP_TIMEOUT_S (45).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/biserve:test}
MAX_IMAGE_MB=${MAX_IMAGE_MB:-150}
STOP_TIMEOUT_S=${STOP_TIMEOUT_S:-45}
IMAGE_BUILDER=${IMAGE_BUILDER:-}

log() { printf 'test-image: %s\n' "$*"; }
fail() { printf 'test-image: FAIL: %s\n' "$*" >&2; exit 1; }

sudo=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo=(sudo); fi
apt_install() {  # apt_install PACKAGE... (Debian; root or sudo)
  command -v apt-get >/dev/null || fail "$* missing and no apt-get to install it"
  log "installing $* with apt-get"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "$@" >/dev/null
}
if [ -z "${ENGINE:-}" ]; then
  if command -v podman >/dev/null; then ENGINE=podman
  # A docker CLI without a reachable engine (a machine with only the
  # client) cannot build: podman then, as below.
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    ENGINE=docker
  elif [ -n "$IMAGE_BUILDER" ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
    ENGINE=podman  # its --prepare (below) installs podman
  else
    apt_install podman runc
    ENGINE=podman
  fi
fi
command -v curl >/dev/null || apt_install curl ca-certificates
engine() { "${sudo[@]}" "$ENGINE" "$@"; }
# podman without systemd (containers here) logs an error about the timer of
# the HEALTHCHECK on run and stop; the check itself works (podman
# healthcheck run, below). Drop those lines, keep everything else.
quiet_timers() { "$@" 2> >(grep -v 'systemd connection' >&2); }

# ------------------------------------------------------------------ build
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  start=$SECONDS
  if [ "$ENGINE" = podman ] && [ -n "$IMAGE_BUILDER" ]; then
    log "building $IMAGE with $IMAGE_BUILDER"
    "${sudo[@]}" "$IMAGE_BUILDER" --prepare
    "${sudo[@]}" "$IMAGE_BUILDER" . "$IMAGE"
  else
    log "building $IMAGE with $ENGINE build"
    # --format docker: OCI images have no HEALTHCHECK (podman's default).
    format=()
    [ "$ENGINE" = podman ] && format=(--format docker)
    engine build "${format[@]}" -t "$IMAGE" .
  fi
  log "built in $((SECONDS - start)) s"
fi
engine image inspect "$IMAGE" >/dev/null 2>&1 || fail "no image $IMAGE"

# ------------------------------------------------------------------ run
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    if port_free "$p" && [ "$p" != "${1:-}" ]; then echo "$p"; return; fi
  done
  fail "no free port found"
}
port=$(free_port)
metrics_port=$(free_port "$port")
name="biserve-test-$$"
workdir=$(mktemp -d)

cleanup() {
  local status=$?
  if [ "$status" != 0 ] && engine inspect "$name" >/dev/null 2>&1; then
    log "server log:"
    engine logs "$name" 2>&1 | sed 's/^/  | /' >&2 || true
  fi
  engine rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT

# Read-only root file system, as deploy/k8s and deploy/compose.yaml run it
# (podman would otherwise add writable tmpfs on /tmp and /run).
read_only=(--read-only)
[ "$ENGINE" = podman ] && read_only+=(--read-only-tmpfs=false)
log "running $IMAGE as $name (read-only root): --port=$port --metrics_port=$metrics_port"
quiet_timers engine run -d --name "$name" --network host "${read_only[@]}" "$IMAGE" \
  --port="$port" --metrics_port="$metrics_port" >/dev/null

if [ -x build/bin/biserve ]; then
  client=(build/bin/biserve)
  log "client: build/bin/biserve (on the host)"
else
  client=(engine run --rm -i --network host --entrypoint /usr/local/bin/biserve "$IMAGE")
  log "client: biserve from the image, in a second host-network container"
fi

# ------------------------------------------------------------------ health
deadline=$((SECONDS + 60))
until "${client[@]}" --server "127.0.0.1:$port" --timeout_s 2 health >/dev/null 2>&1; do
  [ "$(engine inspect --format '{{.State.Running}}' "$name")" = true ] ||
    fail "the container exited before serving"
  [ "$SECONDS" -lt "$deadline" ] || fail "not SERVING after 60 s"
  sleep 0.5
done
log "ok: gRPC health SERVING on 127.0.0.1:$port"
engine logs "$name" > "$workdir/server.log" 2>&1
grep -q "listening on 0.0.0.0:$port " "$workdir/server.log" ||
  fail "the log does not say 'listening on 0.0.0.0:$port'"

# ------------------------------------------------------------------ Predict
"${client[@]}" --server "127.0.0.1:$port" predict \
  --input=- < models/brackets/sample_request.json > "$workdir/predict.json" ||
  fail "predict exited $?"
sed 's/^/  | /' "$workdir/predict.json"
grep -q '"model_name": "brackets", "model_version": 1' "$workdir/predict.json" ||
  fail "predict: not answered by brackets version 1"
# "call(foo bar) now": the seven characters of "foo bar" score above 0.99.
inside=$(grep -o '\[0\.99[0-9]*\]' "$workdir/predict.json" | wc -l)
[ "$inside" = 7 ] || fail "predict: $inside steps above 0.99, expected 7"
log "ok: Predict from the host (brackets v1; 7 steps inside brackets)"

# ------------------------------------------------------------------ /metrics
curl -fsS "http://127.0.0.1:$metrics_port/metrics" > "$workdir/metrics.txt" ||
  fail "cannot scrape http://127.0.0.1:$metrics_port/metrics"
counted=$(grep '^biserve_requests_total{' "$workdir/metrics.txt" |
  grep 'model="brackets"' | grep 'rpc="Predict"' | grep 'code="OK"' || true)
[ -n "$counted" ] || fail "/metrics has no biserve_requests_total for brackets Predict OK"
[ "$(awk '{print $NF}' <<<"$counted")" = 1 ] ||
  fail "/metrics: expected 1 request, got: $counted"
log "ok: /metrics from the host: $counted"
grep '^biserve_build_info' "$workdir/metrics.txt" | sed 's/^/  | /'

# ------------------------------------------------------------------ HEALTHCHECK
if [ "$ENGINE" = podman ]; then
  engine healthcheck run "$name" || fail "podman healthcheck run: unhealthy"
  log "ok: HEALTHCHECK ($(engine inspect --format '{{join .Config.Healthcheck.Test " "}}' "$name")) healthy on port $port"
else
  engine exec "$name" /usr/local/bin/biserve-healthcheck >/dev/null ||
    fail "the HEALTHCHECK command failed"
  log "ok: HEALTHCHECK command succeeds in the container"
fi
uid=$(engine exec "$name" id -u)
[ "$uid" != 0 ] || fail "the server runs as root"
log "ok: the server runs as uid $uid"

# ------------------------------------------------------------------ SIGTERM
start=$SECONDS
quiet_timers engine stop -t "$STOP_TIMEOUT_S" "$name" >/dev/null
code=$(engine inspect --format '{{.State.ExitCode}}' "$name")
engine logs "$name" > "$workdir/server.log" 2>&1 || true
[ "$code" = 0 ] || fail "exit code $code after SIGTERM (0 expected)"
grep -q "received SIGTERM; draining" "$workdir/server.log" ||
  fail "the server did not log 'received SIGTERM; draining'"
grep -q "INFO stopped" "$workdir/server.log" || fail "the server did not log 'stopped'"
log "ok: SIGTERM -> drained, 'stopped', exit 0 in $((SECONDS - start)) s"
grep -E "listening on|ready:|SIGTERM|stopped" "$workdir/server.log" | sed 's/^/  | /'

# ------------------------------------------------------------------ ONNX
onnx_fixture=tests/onnx/fixtures/tagger.onnx
keras_fixture=tests/keras/fixtures/keras_lstm_backward_layer_relu_concat_seq/keras3.10.0.keras
if [ -f "$onnx_fixture" ]; then
  mkdir -p "$workdir/repo/tagger/1"
  cp "$onnx_fixture" "$workdir/repo/tagger/1/model.onnx"
  # A Keras file too: read in biserve_keras_import, which the image must ship
  # beside the server (importers/isolated_import.h).
  if [ -f "$keras_fixture" ]; then
    mkdir -p "$workdir/repo/keras_tagger/1"
    cp "$keras_fixture" "$workdir/repo/keras_tagger/1/model.keras"
  fi
  chmod -R a+rX "$workdir/repo"
  onnx_port=$(free_port "$port")
  onnx_metrics_port=$(free_port "$onnx_port")
  name_onnx="$name-onnx"
  quiet_timers engine run -d --name "$name_onnx" --network host "${read_only[@]}" \
    -v "$workdir/repo:/models:ro" "$IMAGE" \
    --port="$onnx_port" --metrics_port="$onnx_metrics_port" >/dev/null
  deadline=$((SECONDS + 60))
  until "${client[@]}" --server "127.0.0.1:$onnx_port" --timeout_s 2 list \
      > "$workdir/list.json" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ] ||
        [ "$(engine inspect --format '{{.State.Running}}' "$name_onnx")" != true ]; then
      engine logs "$name_onnx" 2>&1 | sed 's/^/  | /' >&2 || true
      engine rm -f "$name_onnx" >/dev/null 2>&1 || true
      fail "the server on a model.onnx repository did not answer ListModels"
    fi
    sleep 0.5
  done
  engine rm -f "$name_onnx" >/dev/null 2>&1 || true
  grep -q STATE_AVAILABLE "$workdir/list.json" || {
    sed 's/^/  | /' "$workdir/list.json" >&2
    fail "tagger/1/model.onnx is not AVAILABLE"
  }
  log "ok: tagger/1/model.onnx (a PyTorch export) imported and AVAILABLE"
  if [ -f "$keras_fixture" ]; then
    grep -A8 '"name": "keras_tagger"' "$workdir/list.json" |
      grep -q STATE_AVAILABLE || {
      sed 's/^/  | /' "$workdir/list.json" >&2
      fail "keras_tagger/1/model.keras is not AVAILABLE"
    }
    log "ok: keras_tagger/1/model.keras imported (biserve_keras_import) and AVAILABLE"
  fi
else
  log "skipped: no $onnx_fixture"
fi

# ------------------------------------------------------------------ size
bytes=$(engine image inspect --format '{{.Size}}' "$IMAGE")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
log "image $IMAGE: $mb MB ($bytes bytes)"
awk -v b="$bytes" -v max="$MAX_IMAGE_MB" 'BEGIN { exit !(b <= max * 1e6) }' ||
  fail "image is $mb MB, over $MAX_IMAGE_MB MB"
log "PASS"
