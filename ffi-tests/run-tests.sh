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
# process-lifetime statics (compiled scripts, the handle registry) that
# valgrind lists as "still reachable".
# valgrind.supp: memcheck's false alarms in the TLS crypto (see the file).
valgrind_cmd=(valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect
              --error-exitcode=1 --num-callers=30
              --suppressions="$(cd "$(dirname "$0")" && pwd)/valgrind.supp")
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# A hang is a failure, not a stuck CI run.
limit=600
# test_fork's fork storm: children per phase (its own default is 1000).
# Under valgrind every child runs instrumented: 50 keep it to seconds.
valgrind_fork_children=${LATCHKEY_FORK_CHILDREN_VALGRIND:-50}

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
    LATCHKEY_FORK_CHILDREN=$valgrind_fork_children \
        run valgrind "$test" "${valgrind_cmd[@]}" "$build/shared/$test"
    # A child forked while a parent thread refills its ASan allocator cache
    # blocks in its first malloc on that lock (GCC 12's libasan has no fork
    # handler for it): under ASan test_fork leaves out its busy phase and
    # forks only while the library's threads are parked (they do not
    # allocate then); the three runs above fork while they are busy.
    LATCHKEY_FORK_BUSY=0 run asan "$test" "$build/asan/$test"
done

echo "ffi-tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
