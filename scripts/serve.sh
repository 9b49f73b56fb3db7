#!/usr/bin/env bash
# Installs what is missing, builds, and serves the bundled example models
# (models/) on gRPC port 8001. Extra arguments go to biserve_server, e.g.
#   scripts/serve.sh --port 9001 --threads 4
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/bin/biserve_server --model_repository models "$@"
