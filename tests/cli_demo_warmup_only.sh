#!/bin/sh
# tests/cli_demo_warmup_only.sh SVOO : `svoo demo --steps 1` runs only step 0, which is
# in every method's dense warm-up: no density or recall was measured, so no
# matched-density comparison may be reported (it printed "matched density 0.000: SVOO
# recall 0.0000, SVG2 recall 0.0000" and a matched_density object of zeros).
# A ctest rather than a tools/valgrind.sh line: 40 calls at N = 1,560 are ~10 s
# natively, minutes under memcheck.
set -eu
SVOO=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
out=$("$SVOO" demo --preset cogvideox-small --steps 1 --png "" --quiet)
printf '%s\n' "$out" | grep -q 'SVOO recall' && fail "a comparison was reported: $(printf '%s\n' "$out" | tail -1)"
printf '%s\n' "$out" | grep -q 'matched density: no call ran past the dense warm-up' || fail "no explanation printed"
out=$("$SVOO" demo --preset cogvideox-small --steps 1 --png "" --quiet --json)
case $out in *matched_density*) fail "--json has a matched_density object" ;; esac
echo ok
