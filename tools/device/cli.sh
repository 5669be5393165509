#!/usr/bin/env bash
# tools/device/cli.sh : on the GPU machine (repo root, the build folder and build-rt
# carried): the CLI's --device cuda paths (svoo run, svoo demo) on profile-calibrated
# synthetic workloads, every method and the dense reference on GPU 0. Logs under $OUT.
set -u
OUT=${OUT:-/tmp}
[ -d build-rt/lib ] || (cd build-rt && tar xJf rt.tar.xz)
export LD_LIBRARY_PATH=$PWD/build-rt/lib:$LD_LIBRARY_PATH
P=build-rt/profiles; BUILD=${BUILD:-build-gpu}; B=./$BUILD/svoo
c() { t0=$(date +%s); echo "== svoo $*"; timeout 200 $B "$@" 2>&1 | tail -14; echo "(rc ${PIPESTATUS[0]}, $(( $(date +%s)-t0 )) s)"; }
c run --preset small --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo,svg2,svg --device cuda --quiet
c run --preset wan2.1-1.3b-480p --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo,svg2 --steps 4 --layers 3 --device cuda --quiet
c demo --device cuda --profile $P/sparsity_wan_1.3B_t2v.csv --png $OUT/demo_cuda.png --quiet
# svoo bench cuda at another shape than the preset's (--heads / --dim reach the synthetic
# data: 425b600) and its --floor usage errors (exit 2)
c bench cuda --heads 4 --dim 64 --reps 2 --profile $P/sparsity_wan_1.3B_t2v.csv --top-p 0.6 --floor 0.1,0.1
c bench cuda --floor 0.2,0.1 --profile $P/sparsity_wan_1.3B_t2v.csv
c bench cuda --floor 0.1,0.1 --method svg2 --profile $P/sparsity_wan_1.3B_t2v.csv
