#!/bin/sh
# The device command for the v4 candidate (dev/cuda/attend_sm90_v4.cu: producer only, key rows
# one tile ahead, K_(t+1) before V_t; prepared 2026-11-30 without a GPU, NOT yet run).
# docs/CUDA_KERNEL.md, "v4 candidate". Build here first (repo root), both into build-cuda-dev/:
#   sh dev/cuda/build.sh                                               # v3.1 (cuda/attend_sm90.cu) -> attend_test
#   SM90_SRC=dev/cuda/attend_sm90_v4.cu TAG=v4 sh dev/cuda/build.sh    # v4 -> attend_test_v4
#   (ptxas of both: 168 registers, 0 spills, no C75xx; build-cuda-dev/ptxas90.txt, ptxas90v4.txt)
# then on the device (repo root, carry build-cuda-dev): sh dev/cuda/v4.sh
# Output: check of v4 (every case on both kernels; $OUT/check_v4.txt), then bench 10 0 of v4 and
# v3.1 interleaved twice (v4, v3.1, v4, v3.1), sm90 kernel only, plans 0-4 (the table's five) and
# the diagnostics 5 (64-row items: lone consumer) and 6 (dense with random perms: k_perm loads);
# full logs in $OUT/bench_*.txt. Worst case ~560 s (timeouts); expected well under that.
cd build-cuda-dev || exit 1
export BENCH_SM90_ONLY=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv,noheader
timeout 120 ./attend_test_v4 check > $OUT/check_v4.txt 2>&1; echo "check v4 rc $?"
grep -E "FAIL|check:" $OUT/check_v4.txt | cut -c1-120
n=0
for b in v4 v31 v4 v31; do
  n=$((n + 1))
  case $b in v4) bin=./attend_test_v4;; *) bin=./attend_test;; esac
  echo "== $b (pass $n)"
  BENCH_CASES=0,1,2,3,4,5,6 timeout 110 $bin bench 10 0 > $OUT/bench_${n}_$b.txt 2>&1
  echo "rc $?"
  grep -E "^(dense|all|random)|failures" $OUT/bench_${n}_$b.txt
done
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
