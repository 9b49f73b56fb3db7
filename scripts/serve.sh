#!/usr/bin/env bash
# Installs what is missing, builds, and runs the bundled example model.
#
# Until the gRPC server lands this evaluates the example locally with
# biserve_eval on models/example/sample_input.json and prints the JSON
# results; extra arguments go to biserve_eval (e.g. --outputs both --states).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/bin/biserve_eval --model models/example/1/model.pbtxt \
  --input models/example/sample_input.json "$@"
