#!/usr/bin/env bash
# make bench: every scenario against one private redis-server, each figure
# next to the floor (a plain PING round trip on one connection) measured in
# the same run. Writes bench/results/latest.jsonl and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/redis-fixture.sh

cargo build --release --quiet --example latchkey-bench
trap stop_redis EXIT
start_redis

OUT=bench/results/latest.jsonl
TMP=$(mktemp)
{
  # redis-benchmark's view of the same round trip, for reference.
  rps=$(redis-benchmark -p "$REDIS_PORT" -c 1 -P 1 -n 50000 -t ping -q 2>/dev/null \
        | grep -m1 PING_INLINE | sed 's/.*: \([0-9.]*\) requests.*/\1/')
  if [ -n "$rps" ]; then
    python3 -c "import json,sys; r=float(sys.argv[1]); print(json.dumps({'scenario':'floor','impl':'redis-benchmark -c 1 -P 1','median_us':round(1e6/r,2),'ops_per_s':round(r)}))" "$rps"
  fi
  target/release/examples/latchkey-bench all "$REDIS_URL"
} | tee "$TMP" >/dev/null
mv "$TMP" "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'scenario':<14}{'impl':<28}{'median µs':>10}{'p90 µs':>9}{'× floor':>9}{'ops/s':>10}{'fairness':>10}")
for r in rows:
    def f(k, fmt):
        return format(r[k], fmt) if k in r else "-"
    print(f"{r['scenario']:<14}{r['impl']:<28}{f('median_us','.1f'):>10}{f('p90_us','.1f'):>9}{f('ratio','.2f'):>9}{f('ops_per_s','.0f'):>10}{f('fairness','.2f'):>10}")
PY
echo "written to $OUT"
