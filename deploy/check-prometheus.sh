#!/usr/bin/env bash
# Checks the Prometheus configuration and the Grafana dashboard against a
# real biserve server: every PromQL expression of
# deploy/grafana/dashboards/biserve.json must evaluate without error and
# return data.
#
#   deploy/check-prometheus.sh
#
# What it does:
#   1. parses the dashboard JSON and the provisioning YAML files;
#   2. installs Debian's prometheus package if PROMETHEUS (default
#      /usr/bin/prometheus) is missing (needs root or sudo; the package's
#      service is kept from starting through policy-rc.d);
#   3. builds biserve with scripts/build.sh if its programs are missing;
#   4. starts biserve_server on free loopback ports with the bundled models
#      and its own Prometheus on a free loopback port, with a temporary data
#      directory and a copy of deploy/prometheus/prometheus.yml whose
#      "biserve" job targets that server's metrics port every second (the
#      file's own target, biserve:8002, is for deploy/compose.yaml);
#   5. sends load: closed-loop Predict traffic to "example", open-loop
#      PredictStream traffic to "brackets", and a trickle of failing requests
#      (an unknown model, invalid features, out-of-vocabulary token ids);
#   6. once Prometheus holds 30 s of that load, evaluates every expression of
#      the dashboard through /api/v1/query (with $model and $instance set to
#      All (.*), then to each bundled model) and prints one line per query.
#
# Each line: ok or NO DATA or ERROR, the number of series, the panel's title
# and the query's refId, and the range of the values (or the error).
# DASHBOARD, PROM_CONFIG and PROMETHEUS override the files checked and the
# Prometheus binary.
#
# Exit status: 0 when every query returned data; 1 otherwise. Every process
# it starts and its temporary directory go away on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
START_NS=$(date +%s%N)
readonly START_NS
readonly PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"
readonly PYTHON=/usr/bin/python3
readonly DASHBOARD="${DASHBOARD:-deploy/grafana/dashboards/biserve.json}"
readonly PROM_CONFIG="${PROM_CONFIG:-deploy/prometheus/prometheus.yml}"
readonly RATE_INTERVAL=30s  # stands in for Grafana's $__rate_interval
readonly LOAD_S=120         # load runs until the checks end; this caps it

log() { echo "check-prometheus: $*" >&2; }
die() {
  log "$*"
  exit 1
}
elapsed() { echo "$((($(date +%s%N) - START_NS) / 1000000))" | awk '{printf "%.1f", $1 / 1000}'; }

TMP=""
PIDS=()  # started background processes, stopped in reverse order
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[i]}" 2>/dev/null || true
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  if [[ $status -ne 0 && -n "$TMP" ]]; then
    for f in "$TMP"/server.log "$TMP"/prometheus.log "$TMP"/load-*.log; do
      [[ -s "$f" ]] || continue
      log "last lines of $(basename "$f"):"
      tail -n 15 "$f" >&2
    done
  fi
  [[ -n "$TMP" ]] && rm -rf "$TMP"
  log "finished in $(elapsed) s (exit status $status)"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root or sudo to run: $*"
  fi
}

# ---------------------------------------------------------------- 1. parse
[[ -x "$PYTHON" ]] || die "$PYTHON is missing"

# ---------------------------------------------------------------- 2. tools
missing=()
[[ -x "$PROMETHEUS" ]] || missing+=(prometheus)
"$PYTHON" -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]} (apt-get)"
  # Keep the package's service from starting: only our own instance runs.
  policy_added=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    policy_added=1
  fi
  install_status=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}" >&2 || install_status=$?
  if [[ $install_status -ne 0 ]]; then
    as_root apt-get update -q >&2 &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}" >&2 && install_status=0
  fi
  [[ -n "$policy_added" ]] && as_root rm -f /usr/sbin/policy-rc.d
  [[ $install_status -eq 0 ]] || die "apt-get install ${missing[*]} failed"
fi
[[ -x "$PROMETHEUS" ]] || die "no Prometheus at $PROMETHEUS"
log "$("$PROMETHEUS" --version 2>&1 | head -n 1)"

"$PYTHON" - "$DASHBOARD" deploy/grafana/provisioning <<'EOF' || die "invalid dashboard or provisioning files"
import json, pathlib, sys, yaml
with open(sys.argv[1]) as f:
    dash = json.load(f)
assert dash.get("uid") and dash.get("panels"), "dashboard has no uid or panels"
files = sorted(pathlib.Path(sys.argv[2]).rglob("*.yaml"))
for p in files:
    doc = yaml.safe_load(p.read_text())
    assert isinstance(doc, dict) and doc.get("apiVersion") == 1, f"{p}: no apiVersion 1"
print(f"check-prometheus: parsed {sys.argv[1]} and {len(files)} provisioning files",
      file=sys.stderr)
EOF

# ---------------------------------------------------------------- 3. build
if [[ ! -x build/bin/biserve_server ]]; then
  log "build/bin/biserve_server is missing: running scripts/build.sh"
  scripts/build.sh >&2
fi
for program in biserve_server biserve_loadtest biserve; do
  [[ -x build/bin/$program ]] || die "build/bin/$program is missing"
done

TMP=$(mktemp -d -t biserve-check-prometheus.XXXXXX)

# ---------------------------------------------------------------- 4. start
build/bin/biserve_server --model_repository models --host 127.0.0.1 \
  --port 0 --metrics_port 0 2>"$TMP/server.log" &
PIDS+=($!)
SERVER_PID=$!
for _ in $(seq 300); do
  grep -q ' ready: ' "$TMP/server.log" && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "biserve_server exited"
  sleep 0.1
done
grep -q ' ready: ' "$TMP/server.log" || die "biserve_server not ready after 30 s"
GRPC=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\) (gRPC.*/\1/p' "$TMP/server.log" | head -n 1)
METRICS=$(sed -n 's/.*metrics on \([0-9.]*:[0-9]*\)\/metrics.*/\1/p' "$TMP/server.log" | head -n 1)
[[ -n "$GRPC" && -n "$METRICS" ]] || die "cannot find the server's addresses in its log"
log "biserve_server: gRPC $GRPC, metrics http://$METRICS/metrics"

PROM_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROM="http://127.0.0.1:$PROM_PORT"
"$PYTHON" - "$PROM_CONFIG" "$METRICS" "$TMP/prometheus.yml" <<'EOF' || die "cannot rewrite $PROM_CONFIG"
import sys, yaml
source, target, out = sys.argv[1:]
with open(source) as f:
    config = yaml.safe_load(f)
jobs = [j for j in config.get("scrape_configs", []) if j.get("job_name") == "biserve"]
if not jobs:
    sys.exit(f"{source}: no scrape config with job_name: biserve")
config.setdefault("global", {}).update(scrape_interval="1s", evaluation_interval="1s")
for job in jobs:
    job.update(scrape_interval="1s", scrape_timeout="1s",
               static_configs=[{"targets": [target]}])
with open(out, "w") as f:
    yaml.safe_dump(config, f, sort_keys=False)
EOF
if command -v promtool >/dev/null; then
  promtool check config "$TMP/prometheus.yml" >&2 || die "promtool rejects the generated configuration"
fi

"$PROMETHEUS" --config.file="$TMP/prometheus.yml" \
  --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" \
  --log.level=warn 2>"$TMP/prometheus.log" &
PIDS+=($!)
PROM_PID=$!

# Instant query; prints the result as JSON ("" on any failure).
query() {
  curl -fsS --max-time 10 --data-urlencode "query=$1" "$PROM/api/v1/query" 2>/dev/null || true
}
# The first sample of an instant query's result as a number, or "".
scalar() {
  query "$1" | "$PYTHON" -c '
import json, sys
try:
    r = json.load(sys.stdin)["data"]["result"]
    print(r[0]["value"][1] if r else "")
except Exception:
    print("")'
}

for _ in $(seq 300); do
  curl -fsS --max-time 2 "$PROM/-/ready" >/dev/null 2>&1 && break
  kill -0 "$PROM_PID" 2>/dev/null || die "prometheus exited"
  sleep 0.1
done
curl -fsS --max-time 2 "$PROM/-/ready" >/dev/null 2>&1 || die "prometheus not ready after 30 s"
for _ in $(seq 100); do
  [[ "$(scalar 'up{job="biserve"}')" == 1 ]] && break
  sleep 0.2
done
[[ "$(scalar 'up{job="biserve"}')" == 1 ]] || die "prometheus does not scrape $METRICS"
log "prometheus ($PROM) scrapes biserve at http://$METRICS/metrics"

# ---------------------------------------------------------------- 5. load
build/bin/biserve_loadtest --server "$GRPC" --model example --concurrency 8 \
  --seq_len 1:50 --warmup_s 0 --duration_s "$LOAD_S" >"$TMP/load-example.log" 2>&1 &
PIDS+=($!)
build/bin/biserve_loadtest --server "$GRPC" --model brackets --stream \
  --rate 100 --concurrency 2 --seq_len 1:50 --warmup_s 0 --duration_s "$LOAD_S" \
  >"$TMP/load-brackets.log" 2>&1 &
PIDS+=($!)
cat >"$TMP/bad-example.json" <<'EOF'
{"model_name": "example", "sequences": [{"features": [1, 2, 3]}]}
EOF
cat >"$TMP/bad-brackets.json" <<'EOF'
{"sequences": [[1, 2, 99999]]}
EOF
(
  # Expected failures: NOT_FOUND (model="") and INVALID_ARGUMENT (both models).
  while :; do
    build/bin/biserve --server "$GRPC" predict --model nope \
      --input models/example/sample_input.json >/dev/null 2>&1 || true
    build/bin/biserve --server "$GRPC" predict --model example \
      --input "$TMP/bad-example.json" >/dev/null 2>&1 || true
    build/bin/biserve --server "$GRPC" predict --model brackets \
      --input "$TMP/bad-brackets.json" >/dev/null 2>&1 || true
    sleep 0.5
  done
) &
PIDS+=($!)
log "load running: example (Predict, 8 workers), brackets (PredictStream, 100/s), failing requests"

# Wait until the last 30 s (the rate window) hold nothing but load: 30 s of
# it, scraped at least 25 times, with failures counted for every model.
sleep 30
ready=""
for _ in $(seq 60); do
  scrapes=$(scalar 'count_over_time(up{job="biserve"}[30s])')
  models=$(scalar 'count(sum by (model) (increase(biserve_compute_duration_seconds_count[30s])) > 0)')
  errors=$(scalar 'count(sum by (model) (increase(biserve_requests_total{code!="OK"}[30s])) > 0)')
  if [[ "${scrapes:-0}" -ge 25 && "${models:-0}" -ge 2 && "${errors:-0}" -ge 3 ]]; then
    ready=1
    break
  fi
  sleep 1
done
[[ -n "$ready" ]] || die "prometheus did not collect enough data (scrapes=$scrapes, models with batches=$models, models with errors=$errors)"
log "prometheus holds $scrapes scrapes of the last 30 s; evaluating the dashboard at $(elapsed) s"

# ---------------------------------------------------------------- 6. check
status=0
"$PYTHON" - "$DASHBOARD" "$PROM" "$RATE_INTERVAL" example brackets <<'EOF' || status=$?
import json, math, re, sys, urllib.parse, urllib.request

dashboard, prom, rate_interval, *models = sys.argv[1:]
with open(dashboard) as f:
    dash = json.load(f)

# Grafana's built-in variables, at a 5 s scrape interval and a 5 m range.
BUILTIN = {
    "__rate_interval": rate_interval, "__interval": "5s", "__interval_ms": "5000",
    "__range": "5m", "__range_s": "300", "__range_ms": "300000",
}
VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")

def substitute(expr, values):
    def one(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in values:
            return values[name]
        if name in BUILTIN:
            return BUILTIN[name]
        raise KeyError(f"unknown variable ${name}")
    return VAR.sub(one, expr)

def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))

queries = []  # (title, refId, expr)
for p in panels(dash["panels"]):
    for t in p.get("targets", []):
        if t.get("expr"):
            queries.append((p.get("title", "?"), t.get("refId", "?"), t["expr"]))
variables = [v["name"] for v in dash.get("templating", {}).get("list", [])]
for v in dash.get("templating", {}).get("list", []):
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q)
    if m:  # the variable lists values if this selector has series
        queries.append((f"variable ${v['name']}", "-", f"count by ({m.group(2)}) ({m.group(1)})"))

def evaluate(expr):
    data = urllib.parse.urlencode({"query": expr}).encode()
    try:
        with urllib.request.urlopen(prom + "/api/v1/query", data, timeout=20) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        return "ERROR", f"{body.get('errorType')}: {body.get('error')}", 0
    result = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        result = [{"value": result}]
    values = [float(s["value"][1]) for s in result]
    nan = sum(math.isnan(v) for v in values)
    if not values:
        return "NO DATA", "", 0
    if nan == len(values):
        return "NO DATA", "every series is NaN", len(values)
    finite = [v for v in values if not math.isnan(v)]
    note = f"{min(finite):.4g} .. {max(finite):.4g}" if len(finite) > 1 else f"{finite[0]:.4g}"
    return "ok", note + (f", {nan} NaN" if nan else ""), len(values)

failures = 0
passes = [("All", ".*")] + [(m, m) for m in models]
for label, model in passes:
    values = {name: ".*" for name in variables}
    values["model"] = model
    print(f"\n$model = {label} ({model})" + ("" if label == "All" else ": failures only"))
    good = 0
    for title, ref, expr in queries:
        try:
            outcome, note, n = evaluate(substitute(expr, values))
        except Exception as e:  # unknown variable, unreachable Prometheus
            outcome, note, n = "ERROR", str(e), 0
        good += outcome == "ok"
        if outcome != "ok":
            failures += 1
        if label == "All" or outcome != "ok":
            print(f"  {outcome:7} {n:3} series  {title} [{ref}]  {note}".rstrip())
            if outcome != "ok":
                print(f"          {substitute(expr, values)}")
    print(f"  {good}/{len(queries)} queries returned data")
sys.exit(1 if failures else 0)
EOF
if [[ $status -eq 0 ]]; then
  log "every dashboard query returned data"
else
  log "some dashboard queries failed"
fi
exit "$status"
