#!/bin/sh
# tools/valgrind.sh : valgrind memcheck over the svoo CLI on representative
# commands with tiny inputs (docs/RELIABILITY.md). Any invalid access,
# uninitialised use or leak (definite, indirect or possible) fails the run.
# tools/valgrind.supp hides only the "possibly lost" thread stacks/TLS of the
# OpenMP (libgomp) and OpenBLAS thread pools, which live until exit.
#
# valgrind 3.19 does not decode AVX-512, so the CLI is built without
# -march=native into $VG_BUILD (default build-valgrind). Commands whose
# subcommand is not implemented yet (`svoo CMD --help` fails) are skipped.
#   sh tools/valgrind.sh            (make valgrind)
# Environment: VG_BUILD, JOBS, VG_KEEP=1 keeps the scratch directory.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VG_BUILD=${VG_BUILD:-build-valgrind}
JOBS=${JOBS:-2}
command -v valgrind >/dev/null || { echo "valgrind missing: apt-get install valgrind" >&2; exit 1; }
cmake -S . -B "$VG_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSVOO_NATIVE=OFF -DSVOO_CUDA=OFF >/dev/null
cmake --build "$VG_BUILD" -j "$JOBS" --target svoo_cli >/dev/null
SVOO=$ROOT/$VG_BUILD/svoo
T=$(mktemp -d /tmp/svoo-valgrind.XXXXXX)
[ "${VG_KEEP:-0}" = 1 ] || trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1

# tiny inputs: q/k/v .npy ([H, N, D] f32 and bf16), a NaN input, Q/K dumps of
# 2 steps x 1 layer for `svoo profile` / `svoo run`
/usr/bin/python3 - "$T" <<'PY'
import json, struct, sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(0)
H, N, D = 2, 96, 64
for name in 'qkv':
    a = rng.standard_normal((H, N, D)).astype('<f4')
    np.save(f'{t}/{name}.npy', a)
    np.save(f'{t}/{name}_bf16.npy', (a.view('<u4') >> 16).astype('<u2'))
bad = rng.standard_normal((H, N, D)).astype('<f4'); bad[1, 5, 7] = np.nan
np.save(f'{t}/q_nan.npy', bad)
import os
os.makedirs(f'{t}/dumps/run0', exist_ok=True)
os.makedirs(f'{t}/dumps/run1', exist_ok=True)
for run in range(2):
    for step in range(2):
        hdr, data = {}, b''
        for name in 'qkv':
            a = rng.standard_normal((1, H, N, D)).astype('<f4')
            hdr[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [len(data), len(data) + a.nbytes]}
            data += a.tobytes()
        h = json.dumps(hdr).encode(); h += b' ' * (-len(h) % 8)
        open(f'{t}/dumps/run{run}/step{step:03d}_layer00.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + data)
# bf16 dumps of steps 0 and 30 (not consecutive) x 2 layers for `svoo run`; one with a layer missing
for d, steps in (('bf16', (0, 30)), ('gap', (0, 30))):
    os.makedirs(f'{t}/dumps_{d}', exist_ok=True)
    for step in steps:
        for layer in range(2):
            if d == 'gap' and (step, layer) == (30, 1):
                continue
            hdr, data = {}, b''
            for name in 'qkv':
                a = (rng.standard_normal((1, H, N, D)).astype('<f4').view('<u4') >> 16).astype('<u2')
                hdr[name] = {'dtype': 'BF16', 'shape': [1, H, N, D], 'data_offsets': [len(data), len(data) + a.nbytes]}
                data += a.tobytes()
            h = json.dumps(hdr).encode(); h += b' ' * (-len(h) % 8)
            open(f'{t}/dumps_{d}/step{step:03d}_layer{layer:02d}.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + data)
# cross-attention dumps (k, v with N/2 keys) that `svoo run` refuses
os.makedirs(f'{t}/dumps_cross', exist_ok=True)
hdr, data = {}, b''
for name, n in (('q', N), ('k', N // 2), ('v', N // 2)):
    a = rng.standard_normal((1, H, n, D)).astype('<f4')
    hdr[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [len(data), len(data) + a.nbytes]}
    data += a.tobytes()
h = json.dumps(hdr).encode(); h += b' ' * (-len(h) % 8)
open(f'{t}/dumps_cross/step000_layer00.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + data)
PY

VG="valgrind -q --tool=memcheck --error-exitcode=99 --leak-check=full \
    --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
    --track-origins=yes --suppressions=$ROOT/tools/valgrind.supp"
pass=0 fail=0 skip=0
# run EXPECTED_RC CMD ARGS... : the CLI must exit with EXPECTED_RC, valgrind
# must report nothing (it exits 99 on any error)
run() {
    want=$1; shift
    sub=$1
    case $sub in version | bogus-command) ;; # no --help to probe
    *) "$SVOO" "$sub" --help >/dev/null 2>&1 || sub= ;;
    esac
    if [ -z "$sub" ]; then
        echo "SKIP  svoo $* (not implemented)"; skip=$((skip + 1)); return 0
    fi
    start=$(date +%s)
    set +e
    $VG "$SVOO" "$@" >"$T/out.txt" 2>"$T/err.txt"
    rc=$?
    set -e
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 99 ] || grep -q '^==[0-9]*==' "$T/err.txt"; then
        echo "FAIL  svoo $* (valgrind errors, ${secs}s):"; grep '^==' "$T/err.txt" | head -60
        fail=$((fail + 1))
    elif [ $rc -ne "$want" ]; then
        echo "FAIL  svoo $* (exit $rc, expected $want, ${secs}s):"; tail -5 "$T/err.txt"
        fail=$((fail + 1))
    else
        echo "ok    svoo $* (exit $rc, ${secs}s)"; pass=$((pass + 1))
    fi
}

# strict_json: the stdout of the run just before must be strict JSON (json-c prints
# NaN / Infinity as bare tokens no JSON parser accepts)
strict_json() {
    if ! /usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]), parse_constant=lambda c: sys.exit("bare " + c))' "$T/out.txt"; then
        echo "FAIL  the output of the command above is not strict JSON"; fail=$((fail + 1))
    fi
}

# err_has TEXT: the stderr of the run just before must contain TEXT
err_has() {
    grep -qF -- "$1" "$T/err.txt" || {
        echo "FAIL  the message of the command above lacks '$1':"; tail -3 "$T/err.txt"; fail=$((fail + 1))
    }
}

run 0 version
run 2 bogus-command
run 0 attn --help
run 0 bench dense --seq 128 --heads 2 --dim 64 --reps 1 --threads 2
# this build has no CUDA backend: a message and exit 1, before any work
run 1 bench cuda --reps 1
run 0 attn --q "$T/q.npy" --k "$T/k.npy" --v "$T/v.npy" --out "$T/o.npy"
run 0 attn --q "$T/q.npy" --k "$T/k.npy" --v "$T/v.npy" --out "$T/o.safetensors" --method svoo --compare --recall-rows 8
run 0 attn --q "$T/q_bf16.npy" --k "$T/k_bf16.npy" --v "$T/v_bf16.npy" --out "$T/o2.npy" --method svg2 --dtype-out f32
run 0 attn --q "$T/q.npy" --k "$T/k.npy" --v "$T/v.npy" --out "$T/o3.npy" --method svg --frames 2 --height 6 --width 8
run 1 attn --q "$T/q_nan.npy" --k "$T/k.npy" --v "$T/v.npy" --out "$T/o4.npy" --check-finite
run 1 attn --q "$T/missing.npy" --k "$T/k.npy" --v "$T/v.npy" --out "$T/o5.npy"
# --threads above SVOO_MAX_THREADS: a usage error naming the option (was accepted up to
# 4096, then refused by svoo_ctx_create: exit 1, "config.num_threads")
run 2 attn --q "$T/q.npy" --k "$T/k.npy" --v "$T/v.npy" --out "$T/o6.npy" --threads 2000
run 0 profile --dumps "$T/dumps" --out "$T/profile.csv" --rows 4 --report --quiet
run 0 inspect "$T/profile.csv" --png "$T/profile.png"
# outputs are written to a temporary file renamed to the path: a FIFO or a symbolic link
# there was replaced (run as root, so were /dev/null and /dev/stdout); now refused
mkfifo "$T/fifo.csv"
run 1 profile --dumps "$T/dumps" --out "$T/fifo.csv" --rows 4 --quiet
[ -p "$T/fifo.csv" ] || { echo "FAIL  svoo profile replaced the FIFO $T/fifo.csv"; fail=$((fail + 1)); }
ln -s profile.png "$T/link.png"
run 1 inspect "$T/profile.csv" --png "$T/link.png"
[ -L "$T/link.png" ] || { echo "FAIL  svoo inspect replaced the link $T/link.png"; fail=$((fail + 1)); }
run 0 run --dumps "$T/dumps/run0" --method dense,svoo,svg2 --recall-rows 8 --quiet
run 0 run --dumps "$T/dumps_bf16" --method svoo --recall-rows 8 --quiet
# --recall-rows 0: recall not measured, null in the JSON (was a bare NaN)
run 0 run --dumps "$T/dumps_bf16" --method svoo --recall-rows 0 --quiet --json
strict_json
run 1 run --dumps "$T/dumps_gap" --quiet
# the message names the shapes (was "differs in shape or dtype from the first dump", of
# the first dump itself)
run 1 run --dumps "$T/dumps_cross" --method dense --quiet
err_has "tensor 'k' is [1, 2, 48, 64] f32; every q, k, v must be [1, 2, 96, 64] f32"
# an empty --method list is a usage error (it ran no method and exited 0)
run 2 run --dumps "$T/dumps/run0" --method , --quiet
# an unknown method: the message quoted it from the freed list (a read after free)
run 2 run --dumps "$T/dumps/run0" --method svoo,foo --quiet
err_has "--method: 'foo'"
run 1 run --dumps "$T/dumps/run0" --method svoo --device cuda --quiet
# cogvideox-small (1,560 tokens: 48 text first, D 64) rather than tiny (4,992
# tokens, D 128): same generator and calibration code plus the text-token path,
# about 45 s under memcheck instead of 185 s (CI budget, docs/RELIABILITY.md)
run 0 synth --preset cogvideox-small --steps 1 --layers 1 --out "$T/synth" --quiet
run 2 synth --preset cogvideox-small --seed " -5" --out "$T/synth2" --quiet
# --out naming a file or nothing: the reason was "File exists" / "Success"
run 1 synth --preset cogvideox-small --steps 1 --layers 1 --out "$T/q.npy" --quiet
err_has "'$T/q.npy': Not a directory"
run 1 synth --preset cogvideox-small --steps 1 --layers 1 --out "" --quiet
err_has "'': No such file or directory"
[ -f "$T/o4.npy" ] && { echo "FAIL  a failed attn left $T/o4.npy"; fail=$((fail + 1)); }
echo "valgrind: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
