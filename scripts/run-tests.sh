#!/usr/bin/env bash
# Runs the test tiers and ends with one line: "N passed, N failed, N skipped".
#   checks  one test each: no ring of calls between src/ files and none over
#           600 lines (check-calls), clang-format, shellcheck
#   unit    cmocka unit tests (no KVM), plain and under ASan/UBSan, and the
#           libFuzzer targets over their corpora (tests/fuzz, clang)
#   guests  tiny guests on the host's /dev/kvm (ASan/UBSan and plain), and
#           the command-line tests against build/vmm and build/vmm-asan
#   lab     stock Debian kernels under vmm on a real (nested) KVM in QEMU
# No argument runs all four. A tier that cannot run here counts as skipped.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
tiers=("$@")
[ ${#tiers[@]} -eq 0 ] && tiers=(checks unit guests lab)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

pass=0 fail=0 skip=0
failed=()

# Add a runner's counts from its log (cmocka or our "N passed, ..." line).
count() {
	local name=$1 log=$2 rc=$3 p f s
	p=$(grep -ohE '^\[  PASSED  \] [0-9]+' "$log" | awk '{s+=$4} END {print s+0}')
	f=$(grep -ohE '^\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
	s=$(grep -ohE '^\[  SKIPPED \] [0-9]+' "$log" | awk '{s+=$4} END {print s+0}')
	if line=$(grep -oE '[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$log" | tail -n1); then
		read -r p _ f _ s _ <<<"$line"
	fi
	# A runner that died without saying so still counts as a failure.
	if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ "$f" = 0 ]; then f=1; fi
	[ "$rc" = 77 ] && [ "$p$f$s" = 000 ] && s=1
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	[ "$f" != 0 ] && failed+=("$name")
	printf '%-32s %3s passed, %s failed, %s skipped\n' "$name" "$p" "$f" "$s"
}

run_one() {
	local name=$1
	shift
	local log
	log=$(mktemp /tmp/vmm-test.XXXXXX)
	"$@" >"$log" 2>&1
	local rc=$?
	if [ -n "${VERBOSE:-}" ] || { [ "$rc" != 0 ] && [ "$rc" != 77 ]; }; then
		sed "s|^|  $name: |" "$log"
	fi
	count "$name" "$log" "$rc"
	rm -f "$log"
}

# check NAME TOOL CMD...: one test, passed when CMD exits 0; skipped, saying
# why, where TOOL is missing.
check() {
	local name=$1 tool=$2
	shift 2
	if ! command -v "$tool" >/dev/null; then
		echo "$name skipped: no $tool (scripts/deps.sh installs it)"
		run_one "$name" echo "0 passed, 0 failed, 1 skipped"
		return
	fi
	run_one "$name" sh -c '"$@" && echo "1 passed, 0 failed, 0 skipped"' sh "$@"
}

build() {
	make -s -j"$(nproc)" "$@" >/tmp/vmm-build.log 2>&1 || {
		cat /tmp/vmm-build.log
		echo "build failed"
		echo "0 passed, 1 failed, 0 skipped"
		exit 1
	}
}

# With the lab in the run, fetch its stock kernel first: the unit tier's
# real-bzImage test uses it too (and skips, saying so, when it is absent).
if [[ " ${tiers[*]} " == *" lab "* ]]; then
	scripts/lab/prepare >/dev/null 2>&1 || echo "lab material could not be fetched; tests that need it will skip"
fi

for tier in "${tiers[@]}"; do
	case $tier in
	checks)
		check check-calls python3 make -s -j"$(nproc)" check-calls
		check format-check clang-format make -s format-check
		check shellcheck shellcheck make -s shellcheck
		;;
	unit)
		build all unit
		for t in build/tests/test_* build/tests-asan/test_*; do
			[ -x "$t" ] && run_one "${t#build/}" "$t"
		done
		# libFuzzer targets (clang, ASan/UBSan): each over its corpus, then
		# FUZZ_REGRESS_SECONDS of fresh fuzzing; logs in build/fuzz/logs.
		# shellcheck disable=SC2012  # our own file names, plain
		fuzz_names=$(cd tests/fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
		if ! why=$(tests/fuzz/run.sh probe); then
			echo "fuzz targets skipped: $why"
			for n in $fuzz_names; do
				run_one "fuzz/$n" echo "0 passed, 0 failed, 1 skipped"
			done
		elif ! make -s -j"$(nproc)" fuzz-build >/tmp/vmm-fuzz-build.log 2>&1; then
			cat /tmp/vmm-fuzz-build.log
			run_one fuzz-build false
		else
			for n in $fuzz_names; do
				run_one "fuzz/$n" tests/fuzz/run.sh regress "${FUZZ_REGRESS_SECONDS:-10}" "$n"
			done
		fi
		;;
	guests)
		build all asan guests build/tests/guest_tests build/tests-asan/guest_tests
		run_one tests-asan/guest_tests build/tests-asan/guest_tests
		run_one tests/guest_tests build/tests/guest_tests
		run_one cli env VMM=build/vmm tests/cli/test_cli.sh
		run_one cli-asan env VMM=build/vmm-asan tests/cli/test_cli.sh
		;;
	lab)
		# the tiny-guest tier runs inside L1 too
		build all asan guests build/tests/guest_tests build/tests-asan/guest_tests
		run_one lab scripts/lab/run-tests
		;;
	*)
		echo "unknown tier '$tier' (checks, unit, guests, lab)" >&2
		exit 2
		;;
	esac
done

[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
