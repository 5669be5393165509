#!/bin/sh
# tests/cli_help.sh SVOO : every command and bench subcommand answers --help and -h
# with its usage on stdout and exit 0 (-h was a usage error, exit 2, for most of them).
set -eu
SVOO=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
for cmd in attn synth profile inspect run demo "bench dense" "bench density" "bench cocluster" \
    "bench cuda"; do
  for flag in --help -h; do
    # shellcheck disable=SC2086
    out=$("$SVOO" $cmd $flag 2>&1) || fail "svoo $cmd $flag: exit $?"
    case $out in *usage:*) ;; *) fail "svoo $cmd $flag: no usage line: $out" ;; esac
  done
done
echo ok
