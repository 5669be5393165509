#!/bin/sh
# tests/cli_run_text_first.sh SVOO : `svoo run --dumps` takes --text-first for SVG's
# geometry, as `svoo attn` does. It had no such option: SVG on dumps whose text tokens come
# first (CogVideoX; what svoo synth --preset cogvideox-small writes) always built its masks
# for text after the video, without a word. The sparse call of layer 1 at step 49 must give
# the rel-L2 that svoo attn gives on the same file with the same geometry.
set -eu
SVOO=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
T=$(mktemp -d /tmp/svoo-cli-text-first.XXXXXX)
trap 'rm -rf "$T"' EXIT
"$SVOO" synth --preset cogvideox-small --steps 2 --layers 2 --dtype f32 --out "$T/all" --quiet >/dev/null
mkdir "$T/d"
cp "$T/all"/step049_layer0*.safetensors "$T/d/" # step 49 only: layer 1 runs sparse
F=$T/d/step049_layer01.safetensors
G="--method svg --frames 7 --height 12 --width 18 --text 48"
# shellcheck disable=SC2086
"$SVOO" run --dumps "$T/d" $G --text-first --quiet --json >"$T/run.json"
# shellcheck disable=SC2086
"$SVOO" attn --q "$F" --k "$F" --v "$F" --out "$T/o.npy" $G --text-first --step 49 --steps 50 \
    --layer 1 --layers 2 --warmup --compare --json >"$T/first.json" 2>/dev/null
# shellcheck disable=SC2086
"$SVOO" attn --q "$F" --k "$F" --v "$F" --out "$T/o.npy" $G --step 49 --steps 50 \
    --layer 1 --layers 2 --warmup --compare --json >"$T/after.json" 2>/dev/null
/usr/bin/python3 - "$T" <<'PY' || fail "svoo run --text-first does not reach SVG's geometry"
import json, sys
t = sys.argv[1]
run = json.load(open(f'{t}/run.json'))['methods'][0]['layers'][1]['rel_l2']
first = json.load(open(f'{t}/first.json'))['rel_l2']
after = json.load(open(f'{t}/after.json'))['rel_l2']
close = lambda a, b: abs(a - b) <= 1e-7 * abs(b)
print(f'run --text-first {run!r}, attn --text-first {first!r}, attn text after {after!r}')
sys.exit(0 if close(run, first) and not close(run, after) else 1)
PY
echo ok
