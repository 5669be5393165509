#!/usr/bin/env bash
# tools/device/racecheck.sh : compute-sanitizer racecheck of test_cuda's tiny subset
# (SVOO_TEST_QUICK=2) split by kernel filters into processes that run side by side: in one
# process, with every kernel instrumented, it did not finish in 150 s (2026-11-30).
# Usage: BUILD=build-carry bash tools/device/racecheck.sh [SPEC...], SPEC = +K1,K2,... (only
# kernels whose name contains one of the K; the others run uninstrumented) or -K1,... (all
# but those), with a suffix @90 to keep the Hopper attention kernel (otherwise the mma.sync
# one runs, SVOO_CUDA_KERNEL=sm80), or @a80 for the mma.sync assignment (SVOO_CUDA_ASSIGN=sm80;
# otherwise Hopper runs the wgmma one). RACE_TIMEOUT (s) bounds each process. The default groups
# cover every kernel of cuda/ by name, and a last group checks any kernel none of them names.
# In the @a80 groups the mma.sync assignment runs on one persistent block
# (SVOO_CUDA_ASSIGN_GRID=1), so that its loop over items runs on the tiny inputs (55 s on an
# H200); the wgmma one keeps its grid: with one block its group did not finish in 200 s
# (2026-11-30, not known whether slow or stuck; memcheck and synccheck with
# SVOO_CUDA_ASSIGN_GRID=2 in validate.sh pass). Exit status 1 when a group fails or times out.
# RT=build-rt (default; the GPU machine, with
# build-rt carried) unpacks and uses the packed runtime libraries; `make test-cuda` sets RT=.
BUILD=${BUILD:-build-gpu}; OUT=${OUT:-/tmp}; T=${RACE_TIMEOUT:-240}
RT=${RT-build-rt}
if [ -n "$RT" ]; then
  [ -d $RT/lib ] || (cd $RT && tar xJf rt.tar.xz)
  export LD_LIBRARY_PATH=$PWD/$RT/lib:${LD_LIBRARY_PATH:-}
fi
S=${SANITIZER:-/usr/local/cuda/bin/compute-sanitizer}
if [ $# -eq 0 ]; then
  set -- +k_assign +k_assign@a80 +attend90_kernel@90 +attend_kernel +k_init_samples,k_gram,k_gemm \
    +k_weights,k_hist,k_col_prefix,k_off +k_sort_scatter,k_centroids,k_refine \
    +k_select,k_csr,k_dense_plan,permute_kernel,wl_ +k_svg
  all=$(for g in "$@"; do g=${g%@90}; g=${g%@a80}; echo "${g#+}"; done | sort -u | paste -sd,)
  set -- "$@" "-$all@90"
fi
n=0
for spec in "$@"; do n=$((n + 1)); kern=sm80; asg=; f=${spec%@90}
  [ "$f" != "$spec" ] && kern=
  [ "${f%@a80}" != "$f" ] && asg=sm80 && f=${f%@a80}
  flag=--kernel-name; [ "${f#-}" != "$f" ] && flag=--kernel-name-exclude
  opts=; for k in $(echo "${f#?}" | tr ',' ' '); do opts="$opts $flag kns=$k"; done
  ( t0=$(date +%s)
    # shellcheck disable=SC2086
    SVOO_CUDA_KERNEL=$kern SVOO_CUDA_ASSIGN=$asg SVOO_CUDA_ASSIGN_GRID=${asg:+1} SVOO_TEST_QUICK=2 timeout $T $S --tool racecheck --error-exitcode 1 $opts \
      ./$BUILD/test_cuda > $OUT/race_$n.txt 2>&1
    echo "$spec rc $? ($(( $(date +%s)-t0 )) s): $(grep -E 'SUMMARY|checks,|rror' $OUT/race_$n.txt | head -4 | tr '\n' ' ')" \
      > $OUT/race_$n.sum ) &
done
wait
fail=0
for i in $(seq 1 $n); do cat $OUT/race_$i.sum; grep -q " rc 0 " $OUT/race_$i.sum || fail=1; done
exit $fail
