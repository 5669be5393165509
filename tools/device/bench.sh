#!/usr/bin/env bash
# tools/device/bench.sh : on the GPU machine (repo root, build-gpu and build-rt
# carried): svoo bench cuda on profile-calibrated synthetic Q/K/V and the peers
# (cuBLAS, cuDNN / FA2 SDPA, FlexAttention) in the same command.
cd build-rt && tar xJf rt.tar.xz && cd ..
export LD_LIBRARY_PATH=$PWD/build-rt/lib:$LD_LIBRARY_PATH
P=build-rt/profiles; BUILD=${BUILD:-build-gpu}; B=./$BUILD/svoo
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
# clk CMD...: CMD with the SM clock sampled every 100 ms, then the clock over the samples
# drawing > 300 W and how many had a throttle reason (the H200 holds our kernels and cuDNN's
# at its power cap: docs/CUDA_KERNEL.md "Eighteenth stop"; the anchors' line covers all its
# peers, so their phases need the samples' times)
clk() { local f sp; f=$(mktemp)
  nvidia-smi --query-gpu=clocks.sm,power.draw,clocks_throttle_reasons.active \
    --format=csv,noheader,nounits -lms 100 > "$f" & sp=$!
  "$@"; kill $sp; wait $sp 2>/dev/null
  awk -F', ' '$2 > 300 { n++; s += $1; if (!m || $1 < m) m = $1; if ($3 !~ /^0x0+$/) c++ }
    END { if (n) printf "  (SM clock above 300 W: mean %.0f MHz, min %d; %d of %d samples throttled)\n", s / n, m, c, n }' "$f"
  rm -f "$f"; }
b() { t0=$(date +%s); echo "== bench cuda $*"; clk timeout 200 $B bench cuda --reps 10 --json "$@" 2>&1 | tail -2; echo "($(( $(date +%s)-t0 )) s)"; }
b --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo --step 10 --layer 5
b --profile $P/sparsity_wan_1.3B_t2v.csv --method svg2 --step 10 --layer 5
b --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo --step 30 --layer 15
b --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo --step 45 --layer 25
# the top-p knob: selected density vs fidelity at the re-planning step
for tp in 0.8 0.7; do b --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo --step 10 --layer 5 --top-p $tp; done
# error-aware routing (dropped clusters as pseudo-keys) at lower top-p: the same calls
for tp in 0.7 0.6; do b --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo --step 10 --layer 5 --top-p $tp --ear; done
b --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo --step 30 --layer 15 --top-p 0.7 --ear
b --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo --step 45 --layer 25 --top-p 0.7 --ear
for s in "30 --layer 15" "45 --layer 25"; do b --profile $P/sparsity_wan_1.3B_t2v.csv --method svoo --step $s --top-p 0.6 --ear; done
b --preset wan2.1-14b-720p --profile $P/sparsity_wan_14B_t2v.csv --method svoo --step 30 --layer 20 --reps 5
b --preset wan2.1-14b-720p --profile $P/sparsity_wan_14B_t2v.csv --method svoo --step 30 --layer 20 --reps 5 --top-p 0.7 --ear
# the kernel harness (dev/cuda/build.sh, carried in build-cuda-dev): check, then both kernels
if [ -x build-cuda-dev/attend_test ]; then
  (cd build-cuda-dev && timeout 60 ./attend_test check 2>&1 | tail -3 && timeout 90 ./attend_test bench 10 0 2>&1 | tail -20)
fi
t0=$(date +%s); clk python3 build-rt/attention_anchors.py --reps 5 2>&1 | tail -21; echo "($(( $(date +%s)-t0 )) s)"
t0=$(date +%s); python3 build-rt/attention_anchors.py --heads 40 --densities 0.15 --reps 3 2>&1 | tail -8; echo "($(( $(date +%s)-t0 )) s)"
