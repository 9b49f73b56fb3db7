#!/usr/bin/env bash
# Validates the Kubernetes manifests (deploy/k8s/, or the files and folders
# given) offline, as one set:
#
#   deploy/validate-k8s.sh                 # every *.yaml under deploy/k8s
#   deploy/validate-k8s.sh FILE_OR_DIR...  # those instead
#   deploy/validate-k8s.sh --self-test     # also proves it catches errors
#
# The validator is deploy/k8s/validate/validate.mjs (Node >= 18, installed
# with apt-get if node or npm is missing; no network
# once installed): JSON Schema validation (ajv) against the Kubernetes 1.27
# OpenAPI schemas and the prometheus-operator CRD schemas bundled in the
# npm packages kubernetes-models and @kubernetes-models/prometheus-operator;
# unknown (misspelt) fields via the TypeScript compiler and the same
# packages' type declarations; and references within the set (selectors,
# ports, HPA targets and custom metrics, PVCs, shutdown budget). It runs
# `npm ci` in deploy/k8s/validate first when its node_modules is missing or
# older than the lock file (the npm registry is needed once).
#
# --self-test copies deploy/k8s to a temporary folder, breaks one thing at a
# time (a misspelt field, a wrong type, a missing required field, an unknown
# kind, a selector, a port name, an HPA metric no adapter rule serves, a
# grace period shorter than the drain, a duplicate key), and fails unless
# each break is reported with the expected message and the unbroken copy
# passes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
validator=$root/deploy/k8s/validate

# Node >= 18 and npm: Debian 12's nodejs (18.x) and npm packages do, and are
# installed with apt-get when node or npm is missing (root or sudo).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  command -v apt-get >/dev/null ||
    { echo "validate-k8s: node (>= 18) and npm are required" >&2; exit 2; }
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "validate-k8s: installing nodejs and npm with apt-get"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || { echo "validate-k8s: node >= 18 required, found $(node --version)" >&2; exit 2; }

if [ ! -f "$validator/node_modules/.package-lock.json" ] ||
   [ "$validator/package-lock.json" -nt "$validator/node_modules/.package-lock.json" ]; then
  echo "validate-k8s: npm ci in deploy/k8s/validate"
  (cd "$validator" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

validate() { node "$validator/validate.mjs" "$@"; }

if [ "${1:-}" != --self-test ]; then
  if [ $# -eq 0 ]; then
    cd "$root"
    set -- deploy/k8s
  fi
  validate "$@"
  exit
fi

# ------------------------------------------------------------------ self-test
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fresh_copy() {
  rm -rf "$tmp/k8s"
  mkdir -p "$tmp/k8s"
  (cd "$root/deploy/k8s" && find . -path ./validate -prune -o -name '*.yaml' -print |
     while read -r f; do mkdir -p "$tmp/k8s/$(dirname "$f")"; cp "$f" "$tmp/k8s/$f"; done)
}

# expect_error DESCRIPTION FILE SED-EXPRESSION EXPECTED-TEXT
expect_error() {
  local what=$1 file=$2 edit=$3 expected=$4 out
  fresh_copy
  sed -i "$edit" "$tmp/k8s/$file"
  if cmp -s "$root/deploy/k8s/$file" "$tmp/k8s/$file"; then
    echo "self-test: BROKEN TEST ($what): the edit changed nothing in $file"
    failures=$((failures + 1))
    return
  fi
  if out=$(cd "$tmp" && validate k8s 2>&1); then
    echo "self-test: MISSED   $what: the validator passed"
    failures=$((failures + 1))
  elif grep -qF -- "$expected" <<<"$out"; then
    echo "self-test: caught   $what"
    grep -F -- "$expected" <<<"$out" | head -1 | sed 's/^/           /'
  else
    echo "self-test: WRONG    $what: expected \"$expected\" in:"
    sed 's/^/           /' <<<"$out"
    failures=$((failures + 1))
  fi
}

fresh_copy
if (cd "$tmp" && validate k8s >/dev/null 2>&1); then
  echo "self-test: ok       the unbroken manifests pass"
else
  echo "self-test: FAIL     the unbroken manifests do not pass"
  failures=$((failures + 1))
fi

expect_error "misspelt field" deployment.yaml \
  's/^          readinessProbe:/          readinesProbe:/' \
  'unknown field "readinesProbe" (did you mean "readinessProbe"?)'
expect_error "wrong type" deployment.yaml \
  's/^  replicas: 2$/  replicas: "2"/' \
  'spec.replicas: must be integer'
expect_error "missing required field" deployment.yaml \
  's/^        - name: biserve$/        -/' \
  'must have required property name'
expect_error "enum value" service.yaml \
  's/^      protocol: TCP$/      protocol: HTTP/' \
  'must be equal to one of the allowed values'
expect_error "unknown kind" pdb.yaml \
  's/^kind: PodDisruptionBudget$/kind: PodDisruptionBudgets/' \
  'no schema for apiVersion policy/v1, kind PodDisruptionBudgets'
expect_error "CRD field (ServiceMonitor)" monitoring/servicemonitor.yaml \
  's/^      interval: 10s$/      intervals: 10s/' \
  'unknown field "intervals"'
expect_error "Service selecting no pods" service.yaml \
  's/^    app.kubernetes.io\/component: server$/    app.kubernetes.io\/component: sever/' \
  'selects no pod template in the set'
expect_error "ServiceMonitor port name" monitoring/servicemonitor.yaml \
  's/^    - port: metrics$/    - port: metric/' \
  'no selected Service has a port named "metric"'
expect_error "HPA metric without adapter rule" autoscaling/hpa-queue-time.yaml \
  's/^          name: biserve_queue_seconds$/          name: biserve_queue_p90/' \
  'custom metric "biserve_queue_p90" is served by no prometheus-adapter rule'
expect_error "grace period shorter than the drain" deployment.yaml \
  's/^      terminationGracePeriodSeconds: 45$/      terminationGracePeriodSeconds: 30/' \
  'SIGKILL would cut the drain'
expect_error "duplicate key" pdb.yaml \
  's/^  maxUnavailable: 1$/  maxUnavailable: 1\n  maxUnavailable: 2/' \
  'Map keys must be unique'

if [ "$failures" -ne 0 ]; then
  echo "self-test: $failures failure(s)"
  exit 1
fi
echo "self-test: every break was caught"
cd "$root"
validate deploy/k8s
