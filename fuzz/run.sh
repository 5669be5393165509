#!/usr/bin/env bash
# fuzz/run.sh TARGET SECONDS : runs build-fuzz/fuzz_TARGET for SECONDS at the
# lowest priority on one core, over the working corpus fuzz/out/TARGET (new
# inputs land there, git-ignored) seeded from fuzz/corpus/TARGET. Crashes,
# leaks and timeouts are written to fuzz/out/TARGET-artifacts/ and fail the
# run. The last lines of the log (fuzz/out/TARGET.log) give executions and
# coverage (cov/ft).
set -uo pipefail
cd "$(dirname "$0")/.."
t=$1
secs=${2:-60}
bin=build-fuzz/fuzz_$t
[ -x "$bin" ] || { echo "fuzz/run.sh: $bin missing: run fuzz/build.sh" >&2; exit 1; }
mkdir -p "fuzz/out/$t" "fuzz/out/$t-artifacts"
# 2 GiB for every target (bug B2, a profile declaring a huge grid, no longer
# allocates it: the loader refuses the file first)
extra=(-rss_limit_mb=2048)
dict=()
[ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
nice -n 19 "$bin" -max_total_time="$secs" -max_len=65536 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="fuzz/out/$t-artifacts/" "${extra[@]}" "${dict[@]}" \
    "fuzz/out/$t" "fuzz/corpus/$t" >"fuzz/out/$t.log" 2>&1
rc=$?
grep -E '^#[0-9]+[[:space:]]' "fuzz/out/$t.log" | tail -1
grep -E '^Done |stat::number_of_executed_units|stat::peak_rss' "fuzz/out/$t.log"
if [ $rc -ne 0 ]; then
    echo "fuzz/run.sh: fuzz_$t failed (rc $rc): see fuzz/out/$t.log and fuzz/out/$t-artifacts/" >&2
    grep -E 'ERROR|fuzz check failed|SUMMARY' "fuzz/out/$t.log" | head -5 >&2
fi
exit $rc
