#!/usr/bin/env bash
# fuzz/build.sh : builds the libFuzzer targets fuzz/fuzz_*.c into build-fuzz/ (git-ignored).
#
# The library's C files are compiled directly into each fuzzer (CPU only, no
# CUDA) with -fsanitize=fuzzer-no-link,address,undefined; the targets link with
# -fsanitize=fuzzer. OpenMP is clang's libomp (libomp-dev); OpenBLAS is the
# OpenMP build from /usr/lib/x86_64-linux-gnu/openblas-openmp.
#
#   fuzz/build.sh            build every target
#   fuzz/build.sh npy        build fuzz_npy only
# Environment: CC (default clang), FUZZ_BUILD (default build-fuzz/), JOBS,
# OPT (default -O1; -O0 for debugging).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CC=${CC:-clang}
OUT=${FUZZ_BUILD:-$ROOT/build-fuzz}
JOBS=${JOBS:-2}
mkdir -p "$OUT/obj"

command -v "$CC" >/dev/null || { echo "fuzz/build.sh: $CC not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

BLAS_INC=/usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB=/usr/lib/x86_64-linux-gnu/openblas-openmp
# clang 14 has no _Float16 on x86 without AVX512-FP16 (gcc, which builds the
# library normally, has): use __fp16, the same IEEE binary16 storage format,
# whose conversions come from compiler-rt's builtins
F16="-D_Float16=__fp16"
RTBUILTINS=$($CC --rtlib=compiler-rt -print-libgcc-file-name)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=c11 -g ${OPT:--O1} -march=native -fopenmp -D_POSIX_C_SOURCE=200809L -DSVOO_FUZZ $F16
        -I$ROOT/include -I$ROOT/src -I$BLAS_INC $(pkg-config --cflags json-c libpng)
        -Wall -Wno-unknown-pragmas -Wno-pass-failed $SAN"
LIBS="-L$BLAS_LIB -Wl,-rpath,$BLAS_LIB -lopenblas $(pkg-config --libs json-c libpng) -fopenmp -lm $RTBUILTINS"

# 1. the library (every src/*/*.c but the CUDA-only ones) into one archive,
#    recompiled only when a source is newer than its object
objs=()
pids=()
for src in src/*/*.c; do
    obj="$OUT/obj/$(echo "${src%.c}" | tr / _).o"
    objs+=("$obj")
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src -name '*.h' -newer "$obj" | head -1)" ]; then
        # shellcheck disable=SC2086
        $CC $CFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj" &
        pids+=($!)
        if [ ${#pids[@]} -ge "$JOBS" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    fi
done
for p in "${pids[@]}"; do wait "$p"; done
rm -f "$OUT/libsvoo_fuzz.a"
ar rcs "$OUT/libsvoo_fuzz.a" "${objs[@]}"

# 2. the targets
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz/fuzz_*.c; do t=$(basename "$f" .c); targets+=("${t#fuzz_}"); done
fi
for t in "${targets[@]}"; do
    # shellcheck disable=SC2086
    $CC $CFLAGS -fsanitize=fuzzer "fuzz/fuzz_$t.c" "$OUT/libsvoo_fuzz.a" $LIBS -o "$OUT/fuzz_$t"
    echo "built $OUT/fuzz_$t"
done
