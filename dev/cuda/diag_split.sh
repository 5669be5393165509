#!/bin/sh
# The device command of the 2026-11-30 split measurement (docs/CUDA_KERNEL.md, "v4 attempt").
# Build here first (repo root):
#   TAG=v3 sh dev/cuda/build.sh                                       # cuda/attend_sm90.cu (v3)
#   SM90_SRC=dev/cuda/attend_sm90_split.cu TAG=s sh dev/cuda/build.sh
#   SM90_SRC=dev/cuda/attend_sm90_split.cu SM90_FLAGS=-DSVOO_SM90_NOSPLIT TAG=ns sh dev/cuda/build.sh
#   SM90_SRC=dev/cuda/attend_sm90_split.cu SM90_FLAGS="-DSVOO_SM90_NOSPLIT -DSVOO_SM90_NOLOAD" \
#     TAG=nl sh dev/cuda/build.sh
# then on the device (repo root, carry build-cuda-dev): sh dev/cuda/diag_split.sh
# Output: check of the split kernel, bench (5 reps) of the variants twice over, and an ncu
# profile of the split kernel on "dense all blocks" ($OUT/details.txt, per-SASS $OUT/src.csv).
cd build-cuda-dev
export BENCH_SM90_ONLY=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv,noheader
timeout 120 ./attend_test_s check > $OUT/check_s.txt 2>&1; echo "check rc $?"
grep -E "sm90|check:" $OUT/check_s.txt | cut -c1-100
for b in v3 s ns nl v3 s; do
  case $b in nl) C=0,1,5;; ns) C=0,1,3;; *) C=0,1,3,5,6,7;; esac
  echo "== $b"; BENCH_CASES=$C timeout 100 ./attend_test_$b bench 5 0 2>&1 | grep -E "^(dense|all|random)"
done
BENCH_CASES=1 timeout 150 ncu --clock-control none -k regex:attend90 -c 1 --section SpeedOfLight \
  --section WarpStateStats --section SourceCounters --section MemoryWorkloadAnalysis \
  -o $OUT/s_all ./attend_test_s bench 1 0 > $OUT/ncu_log.txt 2>&1; echo "ncu rc $?"
ncu -i $OUT/s_all.ncu-rep --page details --print-details all > $OUT/details.txt 2>&1
ncu -i $OUT/s_all.ncu-rep --page source --csv --print-source sass > $OUT/src.csv 2>&1
