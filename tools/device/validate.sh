#!/usr/bin/env bash
# tools/device/validate.sh : on the GPU machine (repo root, build-gpu and build-rt
# carried): test_cuda, compute-sanitizer memcheck/racecheck/synccheck on the
# quick subset, the Python GPU tests. Logs under $OUT when set.
set -u
BUILD=${BUILD:-build-gpu}
OUT=${OUT:-/tmp}
cd build-rt && tar xJf rt.tar.xz && cd ..
export LD_LIBRARY_PATH=$PWD/build-rt/lib:$LD_LIBRARY_PATH
mkdir -p shared/data/profiles && cp build-rt/profiles/*.csv shared/data/profiles/
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv
S=/usr/local/cuda/bin/compute-sanitizer
# res LINE: a step's result, printed and kept for the summary at the end (a device command
# returns only the tail of its output and eight of the files under $OUT)
rm -f $OUT/summary.txt
res() { echo "$*" | tee -a $OUT/summary.txt; }
t0=$(date +%s)
./$BUILD/test_cuda > $OUT/test_cuda.txt 2>&1; res "test_cuda rc $? ($(( $(date +%s)-t0 )) s): $(tail -1 $OUT/test_cuda.txt)"
# the quick subset with one switch each (log test_cuda_NAME.txt): a80, the mma.sync
# assignment (what sm_80 / 86 / 89 run) on this Hopper GPU too; nopack, the Hopper attention
# without union items (every tail its own row tile); nopdl, the union launch after the plain
# one (no programmatic dependent launch)
for x in a80:SVOO_CUDA_ASSIGN=sm80 nopack:SVOO_CUDA_PACK=0 nopdl:SVOO_CUDA_PDL=0; do
  t0=$(date +%s); f=$OUT/test_cuda_${x%%:*}.txt
  env "${x#*:}" SVOO_TEST_QUICK=1 ./$BUILD/test_cuda > $f 2>&1
  res "test_cuda quick, ${x#*:} rc $? ($(( $(date +%s)-t0 )) s): $(tail -1 $f)"; done
for tool in memcheck synccheck; do t0=$(date +%s)
  # two persistent assignment blocks: each takes many items (next-item copies, ring wraps)
  SVOO_CUDA_ASSIGN_GRID=2 SVOO_TEST_QUICK=1 timeout 150 $S --tool $tool --error-exitcode 1 ./$BUILD/test_cuda > $OUT/$tool.txt 2>&1
  res "$tool rc $? ($(( $(date +%s)-t0 )) s): $(tail -1 $OUT/$tool.txt)"; done
# racecheck: the tiny subset split by kernel into parallel processes (tools/device/racecheck.sh;
# one process with every kernel instrumented did not finish in 150 s)
t0=$(date +%s); RT= RACE_TIMEOUT=200 OUT=$OUT BUILD=$BUILD bash tools/device/racecheck.sh
res "racecheck rc $? ($(( $(date +%s)-t0 )) s)"
t0=$(date +%s)
SVOO_LIBRARY_PATH=$BUILD/libsvoo.so SVOO_GPU_REPORT=$OUT/py_gpu.json python3 -m pytest -q -s python/tests_gpu > $OUT/pytest_gpu.txt 2>&1
res "pytest gpu rc $? ($(( $(date +%s)-t0 )) s): $(tail -1 $OUT/pytest_gpu.txt)"
echo "== summary"; cat $OUT/summary.txt
