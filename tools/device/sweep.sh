#!/usr/bin/env bash
# tools/device/sweep.sh : on the GPU machine (repo root, build folder and build-rt carried):
# svoo bench cuda at the calibrated Wan2.1-1.3B 720p re-planning call (step 10, layer 5) over
# the selection / clustering knobs (top-p, iterations, cluster counts), one JSON line each,
# and cuDNN SDPA in the same command. Usage: BUILD=build-carry bash tools/device/sweep.sh [ARGS...]
# where each ARG is one quoted set of extra bench options; default: the set below.
cd build-rt && tar xJf rt.tar.xz && cd ..
export LD_LIBRARY_PATH=$PWD/build-rt/lib:$LD_LIBRARY_PATH
P=build-rt/profiles; B=./${BUILD:-build-gpu}/svoo
[ $# -gt 0 ] || set -- "" "--iters 3" "--iters 4" "--clusters 256,2048" "--clusters 512,2048" \
  "--top-p 0.8 --iters 4" "--top-p 0.8 --clusters 256,2048"
for a in "$@"; do t0=$(date +%s)
  # shellcheck disable=SC2086
  timeout 120 $B bench cuda --reps 5 --json --profile $P/sparsity_wan_1.3B_t2v.csv --step 10 --layer 5 $a 2>&1 | tail -1
  echo "# [$a] ($(( $(date +%s)-t0 )) s)"; done
python3 build-rt/attention_anchors.py --reps 5 --densities 0.15 2>&1 | grep -i -E "cudnn|flex" | head -4
