#!/bin/bash
# The fused kernels' checks and numbers in one call on a lent GPU machine (torch, nvcc and ninja
# there; no package registry): install voxkit from the checkout without dependencies, then run
# python -m voxkit.bench.kernels (the kernels' JIT build included) within BUDGET seconds, its
# printout and its JSON under OUT. Give the call a timeout of BUDGET + 45 s or more.
# Back here: the markdown table at the end of OUT/kernels.txt goes to docs/benchmarks.md, with the card.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-255}  # under a 300 s call limit: the install, the JSON and the table still get out
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/kernels.txt"
if ! python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . > /tmp/pipe.log 2>&1; then
  # an old setuptools, say: run from the checkout instead (this copy of the tree is the machine's own)
  tail -n 3 /tmp/pipe.log | tee -a "$OUT/kernels.txt"
  for pkg in lm asr codec tts; do [ -e "voxkit/$pkg" ] || ln -s "../$pkg" "voxkit/$pkg"; done
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
# a fresh cache: the build time printed is a real build's
VOXKIT_CACHE_DIR=/tmp/voxkit_cache python3 -m voxkit.bench.kernels --budget "$BUDGET" --out "$OUT/kernels.json" 2>&1 \
  | tee -a "$OUT/kernels.txt"
