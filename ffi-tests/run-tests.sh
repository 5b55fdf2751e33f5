#!/usr/bin/env bash
# Runs each C test program four ways: linked against the shared library,
# against the static library, under valgrind (shared), and built with
# ASan+UBSan. Prints one line per run, valgrind's leak and error summary,
# and a closing "N passed, N failed" line; exits non-zero on any failure.
#
# usage: run-tests.sh BUILD_DIR TEST...
set -u

build=$1
shift
logs="$build/logs"
mkdir -p "$logs"

# Leaks count only when definite or indirect: the library keeps a few
# process-lifetime statics (compiled scripts, parking_lot's table) that
# valgrind lists as "still reachable".
valgrind_cmd=(valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect
              --error-exitcode=1 --num-callers=30)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# A hang is a failure, not a stuck CI run.
limit=600

passed=0
failed=0

run() {
    local mode=$1 test=$2
    shift 2
    local log="$logs/$mode-$test.log"
    local start end status
    start=$(date +%s.%N)
    timeout "$limit" "$@" >"$log" 2>&1
    status=$?
    end=$(date +%s.%N)
    local took
    took=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [ "$status" -eq 0 ]; then
        passed=$((passed + 1))
        printf 'ok    %-9s %-16s %6s s\n' "$mode" "$test" "$took"
    else
        failed=$((failed + 1))
        printf 'FAIL  %-9s %-16s %6s s  (exit %s; log %s)\n' "$mode" "$test" "$took" "$status" "$log"
        tail -n 40 "$log" | sed 's/^/      | /'
    fi
    if [ "$mode" = valgrind ]; then
        # One summary per process (forked children are checked too).
        grep -E 'definitely lost:|indirectly lost:|All heap blocks were freed|ERROR SUMMARY:' "$log" \
            | sed -E 's/^==[0-9]+== +/      valgrind: /' | sort | uniq -c | sed 's/^ */      /'
    fi
}

if ! command -v valgrind >/dev/null; then
    echo "valgrind is missing: install it (apt-get install -y valgrind; \`make test\` does)" >&2
    exit 1
fi

for test in "$@"; do
    run shared "$test" "$build/shared/$test"
    run static "$test" "$build/static/$test"
    run valgrind "$test" "${valgrind_cmd[@]}" "$build/shared/$test"
    # A child forked while the library's threads run may block in ASan's
    # own allocator (its lock held by a parent thread at the fork: this
    # libasan has no fork handler for it); plain malloc and valgrind are
    # fine. test_fork's children are checked by the three runs above.
    if [ "$test" = test_fork ]; then
        printf 'skip  %-9s %-16s (ASan allocator is not fork-safe with threads)\n' asan "$test"
        continue
    fi
    run asan "$test" "$build/asan/$test"
done

echo "ffi-tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
