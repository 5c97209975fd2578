#!/usr/bin/env bash
# Runs the libFuzzer targets that `make fuzz-build` puts in build/fuzz/.
#   run.sh probe                    can this machine build them? (clang and
#                                   libFuzzer's runtime); says why not
#   run.sh regress SECONDS NAME...  each target over its corpus
#                                   (tests/fuzz/corpus/NAME), then SECONDS of
#                                   fresh fuzzing from it (0: none), in a
#                                   scratch directory; one "N passed, N
#                                   failed, N skipped" line per target
#   run.sh fuzz SECONDS NAME...     each target for SECONDS, one at a time,
#                                   growing build/fuzz/corpus/NAME from the seeds
# A failing input is kept as build/fuzz/artifacts/NAME-KIND-* (crash, leak,
# oom, timeout), the whole output of a run in build/fuzz/logs/NAME.log.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit

FUZZ_CC=${FUZZ_CC:-clang}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# libFuzzer's own exit status for a crash or a hang is 77 by default, which
# the test runner reads as "skipped": make both plain failures.
LF=(-error_exitcode=1 -timeout_exitcode=1 -timeout=10 -print_final_stats=1)
# More libFuzzer flags for `fuzz` runs, e.g. FUZZ_FLAGS="-fork=1 -ignore_crashes=1"
# to go on past a crash (fork mode: execs and coverage from its status lines).
read -ra EXTRA <<<"${FUZZ_FLAGS:-}"

probe() {
	local dir rc
	command -v "$FUZZ_CC" >/dev/null || {
		echo "$FUZZ_CC not found (Debian: apt-get install clang libclang-rt-14-dev)"
		return 1
	}
	dir=$(mktemp -d /tmp/vmm-fuzz-probe.XXXXXX)
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
		>"$dir/p.c"
	"$FUZZ_CC" -fsanitize=fuzzer,address,undefined -o "$dir/p" "$dir/p.c" >"$dir/log" 2>&1
	rc=$?
	[ $rc = 0 ] || echo "$FUZZ_CC cannot link a libFuzzer target (Debian: apt-get install libclang-rt-14-dev): $(head -n1 "$dir/log")"
	rm -rf "$dir"
	return $rc
}

# The numbers of libFuzzer's last status line ("#N DONE cov: C ft: F corp: K/...").
status_of() {
	grep -E '^#[0-9]+' "$1" | tail -n1 |
		sed -nE 's/^#([0-9]+).*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3 \4/p'
}

# The report of a crash: from its first line (ours, a sanitizer's or
# libFuzzer's) on, bounded.
crash_report() {
	local at
	at=$(grep -nE '^fuzz: |^==[0-9]+==|runtime error:|^SUMMARY: ' "$1" | head -n1 | cut -d: -f1)
	if [ -n "$at" ]; then
		tail -n +"$at" "$1" | grep -vE '^stat::|^MS: |^Base64: ' | head -n 40
	else
		tail -n 20 "$1"
	fi
}

stat_of() {
	sed -nE "s/^stat::$2: *([0-9]+).*/\1/p" "$1" | tail -n1
}

# One target: the corpus once, then (SECONDS > 0) fresh fuzzing.
regress() {
	local secs=$1 name=$2 bin=build/fuzz/fuzz_$2 corpus=tests/fuzz/corpus/$2
	local log=build/fuzz/logs/$name.log art=build/fuzz/artifacts/$name- scratch rc st
	local t0=$SECONDS

	if [ ! -x "$bin" ] || [ ! -d "$corpus" ]; then
		echo "fuzz_$name: missing $bin or $corpus"
		echo "0 passed, 1 failed, 0 skipped"
		return 1
	fi
	"$bin" "${LF[@]}" -runs=0 -artifact_prefix="$art" "$corpus" >"$log" 2>&1
	rc=$?
	read -r _ cov ft _ <<<"$(status_of "$log")"
	if [ $rc != 0 ]; then
		crash_report "$log"
		echo "fuzz_$name: an input of $corpus fails (exit $rc); log in $log"
		echo "0 passed, 1 failed, 0 skipped"
		return 1
	fi
	echo "fuzz_$name: $(find "$corpus" -type f | wc -l) corpus inputs pass (cov ${cov:-?}, ft ${ft:-?})"
	if [ "$secs" -gt 0 ]; then
		scratch=$(mktemp -d "/tmp/vmm-fuzz-$name.XXXXXX")
		"$bin" "${LF[@]}" -max_total_time="$secs" -artifact_prefix="$art" \
			"$scratch" "$corpus" >>"$log" 2>&1
		rc=$?
		rm -rf "$scratch"
		read -r execs cov ft _ <<<"$(status_of "$log")"
		st=$(stat_of "$log" number_of_executed_units)
		if [ $rc != 0 ]; then
			crash_report "$log"
			# shellcheck disable=SC2012  # the newest: ls -t; our own names
			echo "fuzz_$name: crash after ${st:-?} executions; input in $(ls -t "$art"* 2>/dev/null | head -n1), log in $log"
			echo "0 passed, 1 failed, 0 skipped"
			return 1
		fi
		echo "fuzz_$name: ${secs}s fresh: ${st:-$execs} executions, cov ${cov:-?}, ft ${ft:-?}, no crash"
	fi
	echo "fuzz_$name: $((SECONDS - t0))s"
	echo "1 passed, 0 failed, 0 skipped"
}

# One target for a while; prints one summary line.
fuzz() {
	local secs=$1 name=$2 bin=build/fuzz/fuzz_$2 seeds=tests/fuzz/corpus/$2
	local corpus=build/fuzz/corpus/$2 log=build/fuzz/logs/$2.log art=build/fuzz/artifacts/$2-
	local rc execs cov ft corp eps newu crashes before st

	mkdir -p "$corpus"
	before=$(find build/fuzz/artifacts -name "$name-*" | wc -l)
	"$bin" "${LF[@]}" ${EXTRA[@]+"${EXTRA[@]}"} -max_total_time="$secs" -artifact_prefix="$art" \
		"$corpus" "$seeds" >"$log" 2>&1
	rc=$?
	read -r execs cov ft corp <<<"$(status_of "$log")"
	st=$(stat_of "$log" number_of_executed_units)
	eps=$(stat_of "$log" average_exec_per_sec)
	[ -n "$eps" ] || eps=$((${st:-${execs:-0}} / secs))
	newu=$(stat_of "$log" new_units_added)
	crashes=$(($(find build/fuzz/artifacts -name "$name-*" | wc -l) - before))
	printf '%-18s %4ss %11s execs %8s/s  cov %5s  ft %6s  corpus %5s (+%s)  crashes %s\n' \
		"fuzz_$name" "$secs" "${st:-${execs:-?}}" "${eps:-?}" \
		"${cov:-?}" "${ft:-?}" "${corp:-?}" "${newu:-?}" "$crashes"
	if [ $rc != 0 ]; then
		crash_report "$log" | head -n 20 | sed 's/^/    /'
		# shellcheck disable=SC2012  # the newest: ls -t; our own names
		echo "    crashing input: $(ls -t build/fuzz/artifacts/"$name"-* | head -n1); log in $log"
	fi
	return $rc
}

mode=${1:-}
shift || true
case $mode in
probe)
	probe
	;;
regress | fuzz)
	secs=${1:?seconds}
	shift
	mkdir -p build/fuzz/logs build/fuzz/artifacts
	fail=0
	for name in "$@"; do
		"$mode" "$secs" "$name" || fail=1
	done
	exit $fail
	;;
*)
	sed -n '2,13p' "$0" >&2
	exit 2
	;;
esac
