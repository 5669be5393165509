#!/bin/sh
# tests/cli_usage_errors.sh SVOO : option values and combinations the CLI cannot honour
# are usage errors (exit 2, the option named on stderr) before any work, not a failure
# (exit 1) after it, a silent fallback, or a run on another shape than the one asked for.
# Every case here is refused while the options are parsed: no input files, seconds in all.
set -eu
SVOO=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
# usage WANT_TEXT ARGS... : exit 2 and WANT_TEXT on stderr
usage() {
    want=$1; shift
    set +e
    err=$("$SVOO" "$@" 2>&1 >/dev/null)
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "svoo $*: exit $rc, expected 2: $err"
    case $err in *"$want"*) ;; *) fail "svoo $*: message lacks '$want': $err" ;; esac
}
cuda=no
case $("$SVOO" version) in *"cuda: yes"*) cuda=yes ;; esac

# --dim: the kernels take head dim 64 or 128; bench dense took 1..1024 and failed with
# exit 1 (SVOO_ERR_UNSUPPORTED_HEAD_DIM), bench cuda took 65..127
for d in 1 96 100 1024; do
    usage "--dim" bench dense --seq 16 --heads 1 --dim $d
done
if [ $cuda = yes ]; then
    for d in 80 96 127; do
        usage "--dim" bench cuda --dim $d
    done
fi

# an unknown --preset is a usage error as in svoo synth (run, demo and bench cuda exited 1
# with SVOO_ERR_NOT_FOUND)
usage "--preset: unknown preset 'nope'" run --preset nope --quiet
usage "--preset: unknown preset 'nope'" demo --preset nope --png "" --quiet
if [ $cuda = yes ]; then usage "--preset: unknown preset 'nope'" bench cuda --preset nope; fi

# bench cuda --seq makes random data of its own shape: a --preset with it was ignored
# without a word (its heads, head dim, steps and layers too)
if [ $cuda = yes ]; then usage "not with --preset" bench cuda --preset tiny --seq 4096; fi
# --steps / --layers past the workload's: refused (they were clamped to it without a word)
usage "--steps: 51, preset tiny has 50" synth --preset tiny --steps 51 --out /nonexistent/x
usage "--layers: 9, the workload has 4" run --preset small --layers 9 --steps 1 --quiet
# the option and its range are named
usage "--seq: '0' is not in [1, 4194304]" bench cocluster --seq 0
usage "--steps: '0' is not in [1, 100000]" demo --steps 0 --png ""
# svg without the latent geometry names the CLI's options (the library's message names
# config fields)
usage "--method svg needs the latent geometry" attn --q q.npy --k k.npy --v v.npy --out o.npy --method svg
# an unknown method is named as given (it was printed from freed memory)
usage "--method: 'foo'" run --preset small --method svoo,foo --quiet
echo ok
