#!/bin/sh
# The ONNX side-by-side benchmark (issue 17), from anywhere:
#
#   bench/peers/onnx_side_by_side.sh [BUILD_DIR] [onnx_side_by_side.js options]
#
# Makes the tagger .onnx files with Debian's Python (python3-torch) if they
# are missing, builds biserve_bench_onnx (and biserve_bench, for the GEMM
# peak) in BUILD_DIR (default build), installs the node packages if needed,
# then runs onnx_side_by_side.js: the output check, then ONNX Runtime and
# biserve interleaved, round after round. The report (markdown) goes to
# stdout, progress to stderr. Example:
#
#   bench/peers/onnx_side_by_side.sh build-peers --rounds 7
set -eu
cd "$(dirname "$0")/../.."
build=build
case "${1:-}" in
  -*|'') ;;
  *) build=$1; shift ;;
esac
models=bench/results/onnx
if [ ! -f "$models/tagger.onnx" ] || [ ! -f "$models/tagger_packed.onnx" ]; then
  /usr/bin/python3 bench/peers/make_onnx_tagger.py --out-dir "$models"
fi
if [ ! -d "$build" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >&2
fi
cmake --build "$build" -j2 --target biserve_bench_onnx biserve_bench >&2
if [ ! -d bench/peers/node_modules/onnxruntime-node ]; then
  (cd bench/peers && npm ci >&2)
fi
exec node bench/peers/onnx_side_by_side.js --build "$build" --models "$models" "$@"
