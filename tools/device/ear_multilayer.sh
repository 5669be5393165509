#!/usr/bin/env bash
# tools/device/ear_multilayer.sh : on the GPU machine (repo root, the build folder and build-rt
# carried): multi-layer, multi-step quality of the EAR settings at Wan2.1-1.3B 720p
# (docs/EAR_MULTILAYER.md). The 720p calls are generated once by `svoo synth` into dumps and the
# settings run side by side on them (`svoo run --preset` would regenerate every call in every
# run: ~5 s of the machine's 16 cores per 720p call). Logs ($OUT/e720_*.log, one JSON object
# each, with the per-layer density / recall / rel-L2) are printed whole.
# Usage: BUILD=build-carry STEPS=3 LAYERS=4 DEADLINE=150 bash tools/device/ear_multilayer.sh
# Measured on an H200 machine (2026-11-30): synth of 720p pairs ~4-6 s each with other work
# running, so STEPS=3 LAYERS=4 (12 pairs, 6 sparse calls per setting) needs ~60-70 s for synth
# plus ~15-20 s for the four runs; STEPS=2 LAYERS=3 (6 pairs, 2 sparse calls) about half.
set -u
OUT=${OUT:-/tmp}; T0=$(date +%s); DL=${DEADLINE:-150}
rem() { r=$((DL - $(date +%s) + T0)); [ $r -lt 1 ] && r=1; echo $r; }
[ -d build-rt/lib ] || (cd build-rt && tar xJf rt.tar.xz)
export LD_LIBRARY_PATH=$PWD/build-rt/lib:${LD_LIBRARY_PATH:-}
P=build-rt/profiles/sparsity_wan_1.3B_t2v.csv; B=./${BUILD:-build-gpu}/svoo; D=/tmp/ear720
rm -rf $D
timeout "$(rem)" "$B" synth --preset wan2.1-1.3b-720p --profile $P --steps "${STEPS:-3}" \
  --layers "${LAYERS:-4}" --seed 1 --out $D --quiet > "$OUT/e720_synth.txt" 2>&1
rc=$?; nf=$(find $D -name '*.safetensors' 2>/dev/null | wc -l)
echo "synth rc $rc ($(( $(date +%s)-T0 )) s): $nf files"
for a in "0.9" "0.7 --ear" "0.6 --ear" "0.7"; do n=e720_tp${a// /}; n=${n//--/_}
  # shellcheck disable=SC2086
  ( timeout "$(rem)" "$B" run --dumps $D --profile $P --method svoo --device cuda --threads 4 --quiet \
      --json --top-p $a > "$OUT/$n.log" 2>&1; echo "rc $?" >> "$OUT/$n.log" ) &
done
wait
echo "done ($(( $(date +%s)-T0 )) s)"
for f in "$OUT"/e720_tp*.log; do echo "== $(basename "$f")"; cat "$f"; done
