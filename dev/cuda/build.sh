#!/bin/sh
# Builds the standalone kernel harness into build-cuda-dev/ (run from the repo root).
#   dev/cuda/build.sh            sm_90a (what the device machine runs)
#   dev/cuda/build.sh all        + sm_80/86/89 compile check
# SM90_SRC=dev/cuda/attend_sm90_vN.cu builds a kept version of the Hopper kernel instead
# of cuda/attend_sm90.cu, SM90_FLAGS adds flags to its compilation (e.g. -DSVOO_SM90_NOSPLIT),
# TAG=x names the binary attend_test_x.
set -e
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
OUT=build-cuda-dev
SM90_SRC=${SM90_SRC:-cuda/attend_sm90.cu}
BIN=attend_test${TAG:+_$TAG}
mkdir -p $OUT
ARCH="-gencode=arch=compute_90a,code=sm_90a"
if [ "$1" = all ]; then
  ARCH="$ARCH -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_86,code=sm_86 -gencode=arch=compute_89,code=sm_89"
fi
FLAGS="-std=c++17 -O3 -Iinclude -Icuda -lineinfo -DSVOO_HAVE_SM90A $ARCH"
$NVCC $FLAGS -Xptxas -v -c cuda/attend_sm80.cu -o $OUT/attend_sm80.o 2> $OUT/ptxas.txt || { cat $OUT/ptxas.txt; exit 1; }
$NVCC $FLAGS -c cuda/worklist.cu -o $OUT/worklist.o
grep -E "spill|Used" $OUT/ptxas.txt | paste - - | sort | uniq -c | sed 's/ptxas info    : //' | head -20
$NVCC $FLAGS $SM90_FLAGS -Xptxas -v -c $SM90_SRC -o $OUT/attend_sm90$TAG.o 2> $OUT/ptxas90$TAG.txt || { cat $OUT/ptxas90$TAG.txt; exit 1; }
grep -E "attend90|spill|Used|warn|C75" $OUT/ptxas90$TAG.txt | sed 's/ptxas info    : //' | cut -c1-160 | head -30
$NVCC $FLAGS -Xcompiler -fopenmp -c dev/cuda/attend_test.cu -o $OUT/attend_test.o
$NVCC $FLAGS -Xcompiler -fopenmp $OUT/attend_test.o $OUT/attend_sm80.o $OUT/worklist.o $OUT/attend_sm90$TAG.o -o $OUT/$BIN -lgomp
echo built $OUT/$BIN
