#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions called through wait_for and traps
# Checks the Prometheus configuration and the Grafana dashboard against a
# real biserve server: every PromQL expression of
# deploy/grafana/dashboards/biserve.json must evaluate without error and
# return data.
#
#   deploy/check-prometheus.sh
#
# What it does:
#   1. parses the dashboard JSON and the provisioning YAML files, and
#      checks that every datasource the dashboard names is provisioned;
#   2. installs Debian's prometheus package if PROMETHEUS (default
#      /usr/bin/prometheus) is missing, and curl and python3-yaml if they
#      are (needs root or sudo; the package's service is kept from starting
#      through policy-rc.d);
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
# Exit status: 0 when every query returned data; 1 otherwise. Every wait is
# bounded (the whole run gives up after TIMEOUT_S, default 300 s, plus the
# package installation and a build if they are needed). Each process it
# starts runs in its own process group; on any exit (success, failure,
# Ctrl-C, SIGTERM) every group gets SIGTERM, then SIGKILL after 10 s, and
# the temporary directory is removed.
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
readonly TIMEOUT_S="${TIMEOUT_S:-300}"  # from the server's start to the verdict

log() { echo "check-prometheus: $*" >&2; }
die() {
  log "$*"
  exit 1
}
elapsed() { echo "$((($(date +%s%N) - START_NS) / 1000000))" | awk '{printf "%.1f", $1 / 1000}'; }

TMP=""
# Started background processes, each the leader of its own process group
# (started through spawn), stopped in reverse order.
PIDS=()
declare -A NAMES=()  # pid -> program, for messages
# Runs "$@" in the background in a new process group whose id is its pid,
# and records it; the pid is in $!.
spawn() {
  setsid "$@" &
  PIDS+=($!)
  NAMES[$!]=$(basename "$1")
}
# True while process group $1 has a live member.
group_alive() { kill -0 -- "-$1" 2>/dev/null; }
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  trap '' INT TERM  # finish cleaning up
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM -- "-${PIDS[i]}" 2>/dev/null || true
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    for _ in $(seq 100); do  # 10 s for the group to go
      group_alive "$pid" || break
      sleep 0.1
    done
    if group_alive "$pid"; then
      log "${NAMES[$pid]} (process group $pid) did not stop on SIGTERM: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
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

# Seconds since the start, as an integer, for deadlines.
now() { echo "$((($(date +%s%N) - START_NS) / 1000000000))"; }

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
command -v curl >/dev/null || missing+=(curl)
"$PYTHON" -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]} (apt-get)"
  # Keep the package's service from starting: only our own instance runs.
  policy_added=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    policy_added=1
  fi
  # Each apt-get is bounded (a stuck mirror must not hang CI).
  install_status=0
  as_root timeout 600 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}" >&2 || install_status=$?
  if [[ $install_status -ne 0 ]]; then
    as_root timeout 600 apt-get update -q >&2 &&
      as_root timeout 600 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
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
provisioned = {}  # datasource uid -> type
for p in files:
    doc = yaml.safe_load(p.read_text())
    assert isinstance(doc, dict) and doc.get("apiVersion") == 1, f"{p}: no apiVersion 1"
    for ds in doc.get("datasources") or []:
        provisioned[ds.get("uid")] = ds.get("type")

# Every datasource the dashboard names must be a provisioned one.
def refs(node):
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and ds.get("type") != "grafana":
            yield ds
        for v in node.values():
            yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)
used = list(refs(dash))
for ds in used:
    assert provisioned.get(ds.get("uid")) == ds.get("type"), (
        f"dashboard names datasource {ds}; provisioned: {provisioned}")
print(f"check-prometheus: parsed {sys.argv[1]} and {len(files)} provisioning files; "
      f"{len(used)} datasource references match the provisioned {sorted(provisioned)}",
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
# From here on every wait ends by DEADLINE.
DEADLINE=$(($(now) + TIMEOUT_S))
readonly DEADLINE
# Seconds left before DEADLINE, at most $1 (default: all of them).
left() {
  local n=$((DEADLINE - $(now)))
  ((n > 0)) || n=0
  [[ -n "${1:-}" ]] && ((n > $1)) && n=$1
  echo "$n"
}
# Polls "$@" every 0.2 s until it succeeds (0) or $1 s pass (1, also at
# DEADLINE). The command must return quickly (curl with --max-time).
wait_for() {
  local end=$(($(now) + $(left "$1")))
  shift
  while :; do
    "$@" && return 0
    (($(now) < end)) || return 1
    sleep 0.2
  done
}

spawn build/bin/biserve_server --model_repository models --host 127.0.0.1 \
  --port 0 --metrics_port 0 --drain_timeout_s 5 2>"$TMP/server.log"
SERVER_PID=$!
server_ready() {
  kill -0 "$SERVER_PID" 2>/dev/null || die "biserve_server exited"
  grep -q ' ready: ' "$TMP/server.log"
}
wait_for 30 server_ready || die "biserve_server not ready after 30 s"
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

spawn "$PROMETHEUS" --config.file="$TMP/prometheus.yml" \
  --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" \
  --log.level=warn 2>"$TMP/prometheus.log"
PROM_PID=$!

# Instant query; prints the result as JSON ("" on any failure).
query() {
  curl -fsS --max-time 5 --data-urlencode "query=$1" "$PROM/api/v1/query" 2>/dev/null || true
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

prometheus_ready() {
  kill -0 "$PROM_PID" 2>/dev/null || die "prometheus exited"
  curl -fsS --max-time 2 "$PROM/-/ready" >/dev/null 2>&1
}
wait_for 30 prometheus_ready || die "prometheus not ready after 30 s"
scraping() { [[ "$(scalar 'up{job="biserve"}')" == 1 ]]; }
wait_for 20 scraping || die "prometheus does not scrape $METRICS"
log "prometheus ($PROM) scrapes biserve at http://$METRICS/metrics"

# ---------------------------------------------------------------- 5. load
spawn build/bin/biserve_loadtest --server "$GRPC" --model example --concurrency 8 \
  --seq_len 1:50 --warmup_s 0 --duration_s "$LOAD_S" >"$TMP/load-example.log" 2>&1
LOAD_START=$(now)
spawn build/bin/biserve_loadtest --server "$GRPC" --model brackets --stream \
  --rate 100 --concurrency 2 --seq_len 1:50 --warmup_s 0 --duration_s "$LOAD_S" \
  >"$TMP/load-brackets.log" 2>&1
cat >"$TMP/bad-example.json" <<'EOF'
{"model_name": "example", "sequences": [{"features": [1, 2, 3]}]}
EOF
cat >"$TMP/bad-brackets.json" <<'EOF'
{"sequences": [[1, 2, 99999]]}
EOF
# Expected failures: NOT_FOUND (model="") and INVALID_ARGUMENT (both models).
# shellcheck disable=SC2016  # expanded by the inner bash
spawn bash -c '
  while :; do
    build/bin/biserve --server "$1" --timeout_s 5 predict --model nope \
      --input models/example/sample_input.json
    build/bin/biserve --server "$1" --timeout_s 5 predict --model example \
      --input "$2/bad-example.json"
    build/bin/biserve --server "$1" --timeout_s 5 predict --model brackets \
      --input "$2/bad-brackets.json"
    sleep 0.5
  done' failing-requests "$GRPC" "$TMP" >/dev/null 2>"$TMP/failing-requests.log"
log "load running: example (Predict, 8 workers), brackets (PredictStream, 100/s), failing requests"

# Wait until the last 30 s (the rate window) hold nothing but load: 30 s of
# it, scraped at least 25 times, with failures counted for every model.
all_running() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || die "${NAMES[$pid]} (pid $pid) exited during the load"
  done
}
# (One-second sleeps: a signal is handled within a second.)
while (($(now) - LOAD_START < 31)) && (($(left) > 0)); do
  all_running
  sleep 1
done
scrapes="" models="" errors=""
enough_data() {
  all_running
  scrapes=$(scalar 'count_over_time(up{job="biserve"}[30s])')
  models=$(scalar 'count(sum by (model) (increase(biserve_compute_duration_seconds_count[30s])) > 0)')
  errors=$(scalar 'count(sum by (model) (increase(biserve_requests_total{code!="OK"}[30s])) > 0)')
  [[ "${scrapes:-0}" -ge 25 && "${models:-0}" -ge 2 && "${errors:-0}" -ge 3 ]]
}
wait_for 60 enough_data ||
  die "prometheus did not collect enough data (scrapes=$scrapes, models with batches=$models, models with errors=$errors)"
log "prometheus holds $scrapes scrapes of the last 30 s; evaluating the dashboard at $(elapsed) s"

# ---------------------------------------------------------------- 6. check
status=0
# Bounded like the rest: at most 120 s, and not past DEADLINE ("timeout 0"
# would mean no limit).
budget=$(left 120)
((budget > 0)) || budget=1
timeout --kill-after=5 "$budget" \
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
        with urllib.request.urlopen(prom + "/api/v1/query", data, timeout=10) as r:
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
elif [[ $status -eq 124 || $status -eq 137 ]]; then
  log "the dashboard queries did not finish in time"
  status=1
else
  log "some dashboard queries failed"
fi
exit "$status"
