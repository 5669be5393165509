#!/usr/bin/env bash
# tools/device/bench.sh : on the GPU machine (repo root, build-gpu and build-rt
# carried): issue 8's acceptance run in one command. The peers (cuBLAS, cuDNN / FA2
# SDPA, FlexAttention: attention_anchors.py) before and after the calls, `svoo bench
# cuda` on profile-calibrated synthetic Q/K/V (one process a call), the kernel harness
# when carried, then the table with each call's ratio to cuDNN (tools/device/bench_table.py).
# Logs under $OUT (default /tmp/svoo-bench). ~4 minutes with a portable build.
OUT=${OUT:-/tmp/svoo-bench}; mkdir -p "$OUT"; rm -f "$OUT/bench.jsonl"
(cd build-rt && tar xJf rt.tar.xz) || { echo 'bench.sh: build-rt/rt.tar.xz missing or damaged (tools/device/pack_runtime.sh)'; exit 1; }
export LD_LIBRARY_PATH=$PWD/build-rt/lib:$LD_LIBRARY_PATH
P=build-rt/profiles; BUILD=${BUILD:-build-gpu}; B=./$BUILD/svoo
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
# clk FILE CMD...: CMD (its output to FILE) with the SM clock sampled every 100 ms, then
# the clock over the samples drawing > 300 W and how many had a throttle reason (the H200
# holds our kernels and cuDNN's at its power cap: docs/CUDA_KERNEL.md "Eighteenth stop"; the
# anchors' line covers all its peers, so their phases need the samples' times)
clk() { local f sp o=$1; f=$(mktemp); shift
  nvidia-smi --query-gpu=clocks.sm,power.draw,clocks_throttle_reasons.active \
    --format=csv,noheader,nounits -lms 100 > "$f" & sp=$!
  "$@" > "$o" 2>&1; kill $sp; wait $sp 2>/dev/null
  awk -F', ' '$2 > 300 { n++; s += $1; if (!m || $1 < m) m = $1; if ($3 !~ /^0x0+$/) c++ }
    END { if (n) printf "  (SM clock above 300 W: mean %.0f MHz, min %d; %d of %d samples throttled)\n", s / n, m, c, n }' "$f"
  rm -f "$f"; }
# b TAG ARGS...: one call (stdout $OUT/callN.txt, stderr callN.err), its JSON line tagged
# into $OUT/bench.jsonl
n=0
b() { local tg=$1 t0=$(date +%s) c o line; shift; n=$((n + 1)); o=$OUT/call$n.txt
  c=$(clk "$o" sh -c 'exec "$@" 2> "$0"' "$OUT/call$n.err" timeout 200 $B bench cuda --reps 10 --json "$@")
  if line=$(tail -1 "$o" | grep '^{'); then
    echo "$line" | sed "s|^{|{\"tag\":\"$tg\",|" >> "$OUT/bench.jsonl"
  else echo "$tg failed:"; tail -3 "$OUT/call$n.err"; fi
  echo "$tg ($(( $(date +%s)-t0 )) s)$c"; }
# an NAME ARGS...: attention_anchors.py ARGS (output $OUT/NAME.txt)
an() { local t0=$(date +%s) c o=$OUT/$1.txt; shift
  c=$(clk "$o" timeout 120 python3 build-rt/attention_anchors.py "$@")
  echo "$(basename "$o" .txt) ($(( $(date +%s)-t0 )) s)$c"; grep sdpa_cudnn "$o"; }
W=$P/sparsity_wan_1.3B_t2v.csv
an anchors_before --reps 5
# the re-planning call (step 10) at the reference top-p 0.9 and lower, with error-aware routing,
# reuse steps, svg2, the 14B shape
b "svoo re-plan, top-p 0.9" --profile $W --method svoo --step 10 --layer 5
b "svoo re-plan, top-p 0.7" --profile $W --method svoo --step 10 --layer 5 --top-p 0.7
b "svoo re-plan, top-p 0.6" --profile $W --method svoo --step 10 --layer 5 --top-p 0.6
# the same call at the selected densities of Flex's workload below (~0.15 and ~0.05; top-p 0.7
# is ~0.30): a low top-p and SVOO's floor clip (the reference clips to [0.15, 0.20])
b "svoo re-plan, density ~0.15 (top-p 0.05, floor 0.13)" --profile $W --method svoo --step 10 --layer 5 --top-p 0.05 --floor 0.13,0.13
b "svoo re-plan, density ~0.05 (top-p 0.05, floor 0.042)" --profile $W --method svoo --step 10 --layer 5 --top-p 0.05 --floor 0.042,0.042
b "svoo re-plan, top-p 0.6 + EAR" --profile $W --method svoo --step 10 --layer 5 --top-p 0.6 --ear
b "svoo step 45 reuse, top-p 0.9" --profile $W --method svoo --step 45 --layer 25
b "svoo step 30 reuse, top-p 0.6 + EAR" --profile $W --method svoo --step 30 --layer 15 --top-p 0.6 --ear
b "svoo step 45 reuse, top-p 0.6 + EAR" --profile $W --method svoo --step 45 --layer 25 --top-p 0.6 --ear
b "svg2 re-plan, top-p 0.9" --profile $W --method svg2 --step 10 --layer 5
b "14B shape, svoo step 30 reuse (reps 5)" --preset wan2.1-14b-720p --profile $P/sparsity_wan_14B_t2v.csv --method svoo --step 30 --layer 20 --reps 5
b "14B shape, svoo re-plan, top-p 0.6 (reps 5)" --preset wan2.1-14b-720p --profile $P/sparsity_wan_14B_t2v.csv --method svoo --step 10 --layer 20 --top-p 0.6 --reps 5
b "svoo re-plan, top-p 0.6 (again)" --profile $W --method svoo --step 10 --layer 5 --top-p 0.6
an anchors_after --reps 5
an anchors40 --heads 40 --densities 0.15 --reps 3
# the kernel harness (dev/cuda/build.sh, carried in build-cuda-dev): Flex's own workload
# (random 128 x 128 blocks at 0.05 / 0.15 / 0.30) and the dense case
if [ -x build-cuda-dev/attend_test ]; then
  (cd build-cuda-dev && timeout 120 ./attend_test check > "$OUT/harness_check.txt" 2>&1; echo "harness check rc $?"
   BENCH_SM90_ONLY=1 timeout 150 ./attend_test bench 10 0 > "$OUT/harness.txt" 2>&1; echo "harness bench rc $?")
  tail -14 "$OUT/harness.txt"
fi
python3 tools/device/bench_table.py "$OUT"
