#!/usr/bin/env bash
# Lines per function in the product (core/ proto/ server/ client/ importers/
# tools/; tests and bench excluded), longest first, from Universal Ctags'
# start and end lines. Usage: scripts/function_lengths.sh [min_lines]
set -euo pipefail
cd "$(dirname "$0")/.."
min="${1:-0}"
ctags --output-format=u-ctags --fields=+ne --c++-kinds=f --languages=C++ \
  -R -f - core proto server client importers tools |
  awk -F'\t' -v min="$min" '{
    line = ""; end = "";
    for (i = 4; i <= NF; i++) {
      if ($i ~ /^line:/) line = substr($i, 6);
      if ($i ~ /^end:/) end = substr($i, 5);
    }
    if (line != "" && end != "" && end - line + 1 >= min)
      printf "%5d %s:%s %s\n", end - line + 1, $2, line, $1;
  }' | sort -rn
