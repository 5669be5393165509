#!/usr/bin/env bash
# tools/device/pack_runtime.sh : packs what a bare GPU machine lacks to run a
# build made here (docs/CUDA.md "On a GPU machine"): the shared libraries the
# CLI and libsvoo load (OpenBLAS, json-c, libpng, gfortran, quadmath, gomp),
# the published profiles and the peer script from ../shared, into
# build-rt/rt.tar.xz. Carry build-rt and the build folder to the GPU machine.
set -e
cd "$(dirname "$0")/../.."
BIN=${1:-build-gpu/svoo}
[ -x "$BIN" ] || { echo "pack_runtime.sh: $BIN missing (build first)" >&2; exit 1; }
S=build-rt/stage
rm -rf $S && mkdir -p $S/lib $S/profiles
for lib in $(ldd "$BIN" | awk '/=>/ {print $3}' | grep -E 'openblas|json-c|png|gfortran|quadmath|gomp'); do
    cp -L "$lib" $S/lib/
done
cp ../shared/anchors/attention_anchors.py $S/
cp ../shared/data/profiles/*.csv $S/profiles/
(cd $S && tar cJf ../rt.tar.xz .)
rm -rf $S
ls -l build-rt/rt.tar.xz
