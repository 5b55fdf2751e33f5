#!/usr/bin/env bash
# make bench: latchkey against the floor (a plain Redis round trip on one
# connection) and against the peer libraries users would otherwise pick, in
# one run, on the same redis-server processes. Writes
# bench/results/latest.jsonl, bench/results/latency.png and BENCHMARKS.md.
#
# Needs what `make test` needs (Rust, redis-server, redis-benchmark,
# python3); creates its own environments for the peers: bench/.venv
# (bench/python/requirements.txt), the Go module bench/go, the Cargo project
# bench/peers-rust. An implementation that cannot be built here (no Go, a
# binding not written yet, ...) gets a `skipped` row saying why; the rest
# still runs.
#
# BENCH_QUICK=1 divides every count by 10: for working on the harness only.
# BENCH_CYCLE_ROUNDS (5 unless set): the `cycle` scenario's interleaved
# rounds (see the cycle section below).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source tools/redis-fixture.sh

STARTED=$SECONDS
RESULTS=bench/results
WORK=bench/work
ROWS=$WORK/rows.jsonl
mkdir -p "$RESULTS" "$WORK/bin"
: >"$ROWS"

log() { printf 'bench: %s\n' "$*" >&2; }
n() { if [ "${BENCH_QUICK:-0}" = 1 ]; then echo $((($1 + 9) / 10)); else echo "$1"; fi; }

# Where the bindings are (overridable to try the harness against a fake).
PY_BINDING=${LATCHKEY_PY_BINDING:-bindings/python}
GO_BINDING=${LATCHKEY_GO_BINDING:-bindings/go}

## Build ----------------------------------------------------------------------------

log "building the benchmark programs"

# C first: its library step may clean and rebuild latchkey's release build.
C_BIN=target/bench-c/cycle
C_SKIP=""
if [ ! -f bench/c/cycle.c ]; then
  C_SKIP="bench/c/cycle.c is not there"
elif ! make -s -C ffi-tests bench-c >"$WORK/build-c.log" 2>&1 || [ ! -x "$C_BIN" ]; then
  C_SKIP="the C benchmark did not build (make -C ffi-tests bench-c: $(tail -n 1 "$WORK/build-c.log"))"
fi

cargo build --release --quiet --example latchkey-bench
LK=target/release/examples/latchkey-bench

RS_BIN=bench/peers-rust/target/release/latchkey-bench-peers
RS_SKIP=""
if ! cargo build --release --quiet --locked --manifest-path bench/peers-rust/Cargo.toml \
  >"$WORK/build-peers-rust.log" 2>&1; then
  RS_SKIP="bench/peers-rust did not build (see $WORK/build-peers-rust.log)"
fi

GO_BIN=$WORK/bin/bench-go
GO_LK_BIN=$WORK/bin/bench-go-latchkey
GO_SKIP=""
GO_LK_SKIP=""
# The Go benchmark with latchkey.go, in a copy of bench/go whose go.mod
# points the binding's module path at the binding's directory.
build_latchkey_go() {
  local dir=$WORK/go-latchkey module stamp
  stamp=$(cat target/release/liblatchkey.a target/release/liblatchkey.so 2>/dev/null | sha256sum | cut -c1-16)
  module=$(sed -n 's/^module[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$GO_BINDING/go.mod" | head -n 1)
  [ -n "$module" ] || { echo "no module line in $GO_BINDING/go.mod"; return 1; }
  rm -rf "$dir"
  mkdir -p "$dir"
  cp bench/go/*.go bench/go/go.mod bench/go/go.sum "$dir/"
  sed -i "s|LATCHKEY_GO_MODULE|$module|" "$dir/latchkey.go"
  (
    cd "$dir" &&
      go mod edit -require="$module@v0.0.0-00010101000000-000000000000" \
        -replace="$module=$(cd "$ROOT/$GO_BINDING" && pwd)" &&
      go mod tidy -e &&
      CGO_ENABLED=1 go build -tags latchkey -ldflags "-X main.latchkeyLibrary=$stamp" -o "$ROOT/$GO_LK_BIN" .
  )
}
if ! command -v go >/dev/null; then
  GO_SKIP="go is not installed"
elif ! (cd bench/go && go build -o "$ROOT/$GO_BIN" .) >"$WORK/build-go.log" 2>&1; then
  GO_SKIP="bench/go did not build (see $WORK/build-go.log)"
fi
if [ -n "$GO_SKIP" ]; then
  GO_LK_SKIP=$GO_SKIP
elif [ ! -f "$GO_BINDING/go.mod" ]; then
  GO_LK_SKIP="binding not built ($GO_BINDING/go.mod is not there)"
elif ! build_latchkey_go >"$WORK/build-go-latchkey.log" 2>&1; then
  GO_LK_SKIP="binding not built: the benchmark did not build against $GO_BINDING ($(tail -n 1 "$WORK/build-go-latchkey.log"); see $WORK/build-go-latchkey.log)"
fi

# The peers' virtualenv, rebuilt when requirements.txt changes.
VENV=bench/.venv
PY=$VENV/bin/python
PY_SKIP=""
req_sum=$(sha256sum bench/python/requirements.txt | cut -d' ' -f1)
if [ ! -x "$PY" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$req_sum" ]; then
  log "creating $VENV (bench/python/requirements.txt)"
  # Debian's python3 makes virtualenvs only with python3-venv.
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing python3-venv with apt-get"
    apt-get install -y python3-venv >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 && apt-get install -y python3-venv >/dev/null 2>&1; } || true
  fi
  rm -rf "$VENV"
  if python3 -m venv "$VENV" >"$WORK/venv.log" 2>&1 &&
    "$PY" -m pip install --quiet --disable-pip-version-check -r bench/python/requirements.txt >>"$WORK/venv.log" 2>&1; then
    echo "$req_sum" >"$VENV/.requirements.sha256"
  else
    PY_SKIP="could not create $VENV (see $WORK/venv.log)"
  fi
fi
REPORT_PY=$PY
[ -z "$PY_SKIP" ] || REPORT_PY=python3
"$REPORT_PY" bench/environment.py "$WORK/environment.json"

# The bindings use liblatchkey from the release build.
export LD_LIBRARY_PATH="$ROOT/target/release${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -f target/release/liblatchkey.so ] && export LATCHKEY_LIBRARY="$ROOT/target/release/liblatchkey.so"
LK_PYTHONPATH=""
for d in "$PY_BINDING" "$PY_BINDING/src"; do
  [ -d "$d" ] && LK_PYTHONPATH="$LK_PYTHONPATH${LK_PYTHONPATH:+:}$ROOT/$d"
done

## Servers -------------------------------------------------------------------------

# One server for every single-master scenario, five more for Redlock.
PIDS=()
DIRS=()
cleanup() {
  local i
  for i in "${!PIDS[@]}"; do
    python3 "$REDIS_FIXTURE_TOOL" stop "${DIRS[$i]}" || kill "${PIDS[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
start_one() {
  start_redis
  PIDS+=("$REDIS_PID")
  DIRS+=("$REDIS_DIR")
}
start_one
URL=$REDIS_URL
PORT=$REDIS_PORT
MASTERS=()
for _ in 1 2 3 4 5; do
  start_one
  MASTERS+=("$REDIS_URL")
done

## Implementations ---------------------------------------------------------------

LK_PY_SKIP=$PY_SKIP
if [ -z "$LK_PY_SKIP" ]; then
  if [ -z "$LK_PYTHONPATH" ]; then
    LK_PY_SKIP="binding not built ($PY_BINDING is not there)"
  elif ! why=$(PYTHONPATH=$LK_PYTHONPATH timeout 60 "$PY" bench/python/bench.py latchkey-python available "$URL" 2>&1); then
    LK_PY_SKIP="binding not built or not importable: $(printf '%s' "$why" | tail -n 1)"
  fi
fi

# why_not IMPL: why IMPL cannot run here (empty: it can).
why_not() {
  case $1 in
    latchkey-rust) echo "" ;;
    latchkey-c) echo "$C_SKIP" ;;
    latchkey-python) echo "$LK_PY_SKIP" ;;
    redis-py | python-redis-lock | pottery) echo "$PY_SKIP" ;;
    latchkey-go) echo "$GO_LK_SKIP" ;;
    redsync) echo "$GO_SKIP" ;;
    redlock-rs) echo "$RS_SKIP" ;;
  esac
}

# cmd_of IMPL: sets CMD to the command that runs IMPL's subcommands.
cmd_of() {
  case $1 in
    latchkey-rust) CMD=("$LK") ;;
    redlock-rs) CMD=("$RS_BIN") ;;
    latchkey-python) CMD=(env "PYTHONPATH=$LK_PYTHONPATH" "$PY" bench/python/bench.py "$1") ;;
    redis-py | python-redis-lock | pottery) CMD=("$PY" bench/python/bench.py "$1") ;;
    latchkey-go) CMD=("$GO_LK_BIN" "$1") ;;
    redsync) CMD=("$GO_BIN" "$1") ;;
  esac
}

# measure SCENARIO IMPL COMMAND...: runs the command (at most 5 minutes) and
# adds the JSON lines it prints; a failure becomes a `skipped` row. FLOOR
# (the run's floor) fills in rows that have no floor of their own.
measure() {
  local scenario=$1 impl=$2 out status
  shift 2
  if out=$(timeout --kill-after=10 300 "$@" 2>"$WORK/last.err"); then
    printf '%s\n' "$out" | python3 bench/rows.py append "$ROWS" "$scenario" "$impl" "${FLOOR:-}"
  else
    status=$?
    python3 bench/rows.py skip "$ROWS" "$scenario" "$impl" \
      "failed (exit $status): $(tail -n 2 "$WORK/last.err" | tr '\n' ' ')"
  fi
}

# run SCENARIO IMPL SUBCOMMAND ARGS...: measure IMPL, or say why not.
run() {
  local scenario=$1 impl=$2 why
  shift 2
  why=$(why_not "$impl")
  if [ -n "$why" ]; then
    python3 bench/rows.py skip "$ROWS" "$scenario" "$impl" "$why"
    return
  fi
  cmd_of "$impl"
  measure "$scenario" "$impl" "${CMD[@]}" "$@"
}

## Scenarios -----------------------------------------------------------------------

log "floor: redis-benchmark -c 1 -P 1, and a PING interleaved with the Rust cycle"
measure floor "redis-benchmark -c 1 -P 1" python3 bench/redis_benchmark.py "$PORT" 1 "$(n 30000)" 3 floor
# The run's floor: the fastest PING any reader reaches (a spinning one too).
measure floor raw-ping "$LK" floor-raw "$URL" "$(n 20000)"

# On this shared machine one implementation's cycle drifts by 30-50 %
# between minutes, so the implementations are not measured one after the
# other: in ROUNDS rounds, each running every implementation once with
# 1/ROUNDS of its cycles, in an order that rotates from round to round
# (bench/rows.py order). Each round's rows go to ROUND_ROWS with their
# samples; bench/rows.py rounds then writes one row per implementation (its
# samples pooled, plus every round's median), and the verdicts compare
# implementations round by round (bench/report.py).
ROUNDS=${BENCH_CYCLE_ROUNDS:-5}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { log "BENCH_CYCLE_ROUNDS must be a positive number, not '$ROUNDS'"; exit 2; }
ROUND_ROWS=$WORK/cycle-rounds.jsonl
: >"$ROUND_ROWS"
# cycles_of IMPL: IMPL's cycles in one round (its whole count / ROUNDS).
cycles_of() {
  local total
  case $1 in
    latchkey-rust) total=$(n 20000) ;;
    latchkey-c) total=$(n 10000) ;;
    latchkey-python | redis-py | python-redis-lock | pottery) total=$(n 3000) ;;
    *) total=$(n 5000) ;;
  esac
  echo $(((total + ROUNDS - 1) / ROUNDS))
}
log "cycle: uncontended acquire + release, $ROUNDS interleaved rounds"
CYCLE_IMPLS=()
for impl in latchkey-rust latchkey-c latchkey-python redis-py python-redis-lock pottery latchkey-go redsync redlock-rs; do
  why=$(why_not "$impl")
  if [ -n "$why" ]; then
    python3 bench/rows.py skip "$ROWS" cycle "$impl" "$why"
  else
    CYCLE_IMPLS+=("$impl")
  fi
done
for ((round = 0; round < ROUNDS; round++)); do
  read -r -a order <<<"$(python3 bench/rows.py order "$round" "$ROUNDS" "${CYCLE_IMPLS[@]}")"
  log "cycle round $((round + 1))/$ROUNDS: ${order[*]}"
  for impl in "${order[@]}"; do
    if [ "$impl" = latchkey-c ]; then
      CMD=("$C_BIN" "$URL")
    else
      cmd_of "$impl"
      CMD+=(cycle "$URL")
    fi
    ROWS=$ROUND_ROWS BENCH_ROUND=$round BENCH_SAMPLES=1 measure cycle "$impl" "${CMD[@]}" "$(cycles_of "$impl")"
  done
done
python3 bench/rows.py rounds "$ROUND_ROWS" "$ROWS" "$ROUNDS"
FLOOR=$(python3 bench/rows.py get "$ROWS" floor latchkey-rust median_us)

log "handoff: release -> a waiter blocked in another process returns"
# latchkey-rust interleaved with the least a pub/sub handoff costs here
# (bare scripts, bare SUBSCRIBE): rows latchkey-rust and bare-pubsub-scripts.
run handoff latchkey-rust handoff "$URL" "$(n 1000)"
run handoff latchkey-python handoff "$URL" "$(n 300)"
run handoff latchkey-go handoff "$URL" "$(n 500)"
run handoff python-redis-lock handoff "$URL" "$(n 300)"
# Polling waiters take 0.1-0.25 s a round: few rounds.
for impl in redis-py pottery redsync redlock-rs; do
  run handoff "$impl" handoff "$URL" "$(n 30)"
done

log "herd: N waiters on one lock (scripts per handoff, handoff latency, fairness)"
# One wake-up per release: a handoff is 2 scripts, the release and the
# winner's acquire. `herd` adds the releasing thread's own re-queueing (~2);
# `drain` counts the handoffs alone.
for waiters in 1 32 256; do
  run "herd-$waiters" latchkey-rust herd "$URL" "$waiters" "$(n 500)"
done
# The same with a fair lock (strict arrival order).
for waiters in 1 32 256; do
  run "herd-fair-$waiters" latchkey-rust herd "$URL" "$waiters" "$(n 500)" fair
done
# The handoffs alone: N parked waiters take the lock down the queue.
for waiters in 1 32 256; do
  run "drain-$waiters" latchkey-rust drain "$URL" "$waiters" "$(n 500)"
  run "drain-fair-$waiters" latchkey-rust drain "$URL" "$waiters" "$(n 500)" fair
done

log "the lock family: cycles, rwlock-read-8, election-failover"
run family latchkey-rust family "$URL" "$(n 2000)"
run rwlock-read-8 latchkey-rust rwlock-read "$URL" 8 "$(n 3)"
run election-failover latchkey-rust election-failover "$URL" "$(n 10)" 1000

log "contended-4: 4 processes on one lock, 3 rounds of 2 s"
for impl in latchkey-rust latchkey-python latchkey-go redis-py python-redis-lock pottery redsync redlock-rs; do
  why=$(why_not "$impl")
  if [ -n "$why" ]; then
    python3 bench/rows.py skip "$ROWS" contended-4 "$impl" "$why"
    continue
  fi
  cmd_of "$impl"
  measure contended-4 "$impl" python3 bench/contend.py "$impl" "$URL" 2 "$(n 3)" "$FLOOR" -- "${CMD[@]}" contend
done

log "cycle-redlock3, cycle-redlock5: Redlock over 3 and 5 independent servers"
for masters in 3 5; do
  for impl in latchkey-rust pottery redsync redlock-rs; do
    # latchkey-rust: a hook that reports `skipped` until its Redlock lands.
    run "cycle-redlock$masters" "$impl" cycle-redlock "cycle-redlock$masters" "$(n 1000)" "${MASTERS[@]:0:$masters}"
  done
done

log "cycle-redlock5-2down: Redlock over 5 masters, 2 of them blackholed, next to all 5 up"
run cycle-redlock5-2down latchkey-rust cycle-redlock-down cycle-redlock5-2down "$(n 1000)" 2 "${MASTERS[@]:0:5}"

log "many-locks: N threads, each on its own lock, against redis-benchmark -c N"
for threads in 1 2 4 8; do
  before=$(wc -l <"$ROWS")
  measure many-locks "redis-benchmark -c $threads -P 1" \
    python3 bench/redis_benchmark.py "$PORT" "$threads" "$(n $((20000 * threads)))" 3 many-locks
  if [ "$(wc -l <"$ROWS")" -gt "$before" ] &&
    ping_ops=$(python3 bench/rows.py get "$ROWS" many-locks "redis-benchmark -c $threads -P 1" ops_per_s 2>/dev/null); then
    measure many-locks latchkey-rust "$LK" many-locks "$URL" "$threads" "$(n 5)" "$ping_ops"
  fi
done

log "renewal: 10,000 and 100,000 auto-renewed leases in one process (ttl 3 s), and 100,000 at the default ttl (30 s)"
for leases in 10000 100000; do
  measure renewal latchkey-rust "$LK" renewal "$URL" "$(n $leases)" 9
done
# Two 30 s windows (three renewal periods each) at the default ttl.
measure renewal latchkey-rust "$LK" renewal "$URL" "$(n 100000)" 6 30

log "residue: what 100,000 names taken once leave in Redis, right after and after the retention"
# A server of its own: the figure is its used_memory. The fence retention
# is scaled down from one day to 20 s (longer than taking the names).
start_one
measure residue latchkey-rust "$LK" residue "$REDIS_URL" "$(n 100000)" 20000

## Results -------------------------------------------------------------------------

mv "$ROWS" "$RESULTS/latest.jsonl"
elapsed=$((SECONDS - STARTED))
"$REPORT_PY" bench/report.py "$RESULTS/latest.jsonl" "$WORK/environment.json" BENCHMARKS.md \
  "$RESULTS/latency.png" "$elapsed"
python3 bench/readme_figures.py --write
log "written: $RESULTS/latest.jsonl, $RESULTS/latency.png, BENCHMARKS.md, README.md's figures ($((elapsed / 60)) min $((elapsed % 60)) s)"
