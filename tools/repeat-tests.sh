#!/usr/bin/env bash
# tools/repeat-tests.sh N [TARGET [MAKE ARGS...]]: runs `make TARGET` (default rust-test)
# N times in a row and counts, per test, the runs in which it failed, so
# that a flaky test shows itself before CI meets it. Each run's output is
# kept in target/repeat/run-K.log; the tally is printed at the end and the
# exit status is 1 when any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:?usage: tools/repeat-tests.sh N [make target]}
target=${2:-rust-test}
shift $(( $# < 2 ? $# : 2 ))
logs=target/repeat
mkdir -p "$logs"
failed_runs=0
for k in $(seq 1 "$runs"); do
  started=$(date +%s)
  if make --no-print-directory "$target" "$@" >"$logs/run-$k.log" 2>&1; then
    echo "run $k/$runs: passed ($(( $(date +%s) - started )) s)"
  else
    failed_runs=$((failed_runs + 1))
    echo "run $k/$runs: FAILED ($(( $(date +%s) - started )) s), see $logs/run-$k.log"
    # A run that failed before any test did (a build or a fixture) says why.
    grep -E '^test .* \.\.\. FAILED$' "$logs/run-$k.log" | sed 's/^/  /' \
      || tail -n 3 "$logs/run-$k.log" | sed 's/^/  /'
  fi
done
echo "failures per test over $runs runs of make $target:"
cat "$logs"/run-*.log | grep -E '^test .* \.\.\. FAILED$' | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' \
  | sort | uniq -c | sort -rn | sed 's/^/  /'
echo "$failed_runs of $runs runs failed"
[ "$failed_runs" = 0 ]
