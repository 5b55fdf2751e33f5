#!/usr/bin/env bash
# make demo: worker processes written in Rust, C, Python and Go (each
# language that is built) contend for one lock on a private redis-server.
# Under the lock each does a deliberately non-atomic read-modify-write of a
# shared counter file; at the end the counter must equal the number of
# acquisitions.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/redis-fixture.sh

PER_WORKER=${PER_WORKER:-20}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-demo.XXXXXX")
trap 'stop_redis; rm -rf "$WORK"' EXIT
start_redis
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on port $REDIS_PORT"

COUNTER="$WORK/counter"
echo 0 >"$COUNTER"
NAME=demo
pids=()
langs=()
launch() { # launch LANGUAGE COMMAND...
  langs+=("$1"); shift
  "$@" &
  pids+=($!)
}

for _ in 1 2; do
  launch rust target/release/latchkey --url "$REDIS_URL" worker "$NAME" \
    --count "$PER_WORKER" --counter "$COUNTER" --verbose
done
if [ -x target/examples-c/contend ]; then
  for _ in 1 2; do
    launch c target/examples-c/contend "$REDIS_URL" "$NAME" "$PER_WORKER" "$COUNTER"
  done
fi
if [ -f examples/python/contend.py ] && [ -f bindings/python/latchkey/__init__.py ]; then
  for _ in 1 2; do
    launch python env LATCHKEY_LIBRARY="$PWD/target/release/liblatchkey.so" \
      PYTHONPATH=bindings/python python3 examples/python/contend.py \
      "$REDIS_URL" "$NAME" "$PER_WORKER" "$COUNTER"
  done
fi
if [ -x target/examples-go/contend ]; then
  for _ in 1 2; do
    launch go target/examples-go/contend "$REDIS_URL" "$NAME" "$PER_WORKER" "$COUNTER"
  done
fi

failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
expected=$(( ${#pids[@]} * PER_WORKER ))
got=$(cat "$COUNTER")
echo
echo "${#pids[@]} workers ($(printf '%s\n' "${langs[@]}" | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')), $expected acquisitions, counter = $got"
if [ "$failed" -ne 0 ] || [ "$got" -ne "$expected" ]; then
  echo "FAILED: a worker failed or updates were lost" >&2
  exit 1
fi
echo "no lost updates: every read-modify-write happened under the lock"
