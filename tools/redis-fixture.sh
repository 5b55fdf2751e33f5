# Sourced by the demo, the benchmarks and tools/with-redis: start_redis [ARGS]
# starts a private redis-server (extra redis-server ARGS) on a free port in a
# temporary directory and sets REDIS_PORT, REDIS_URL, REDIS_DIR and
# REDIS_PID; stop_redis stops it and removes the directory. Both call
# tools/redis_fixture.py, the fixture every test suite uses (readiness is the
# server's own "Ready to accept connections" line, not a sleep).

REDIS_FIXTURE_TOOL="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/redis_fixture.py"

start_redis() {
  local line
  line=$(python3 "$REDIS_FIXTURE_TOOL" start --detach -- "$@") || return 1
  REDIS_PORT= REDIS_PID= REDIS_DIR=
  local re_port='"port": ([0-9]+)' re_pid='"pid": ([0-9]+)' re_dir='"dir": "([^"]*)"'
  [[ $line =~ $re_port ]] && REDIS_PORT=${BASH_REMATCH[1]}
  [[ $line =~ $re_pid ]] && REDIS_PID=${BASH_REMATCH[1]}
  [[ $line =~ $re_dir ]] && REDIS_DIR=${BASH_REMATCH[1]}
  if [ -z "${REDIS_PORT:-}" ] || [ -z "${REDIS_PID:-}" ] || [ -z "${REDIS_DIR:-}" ]; then
    echo "redis-server did not start: $line" >&2
    return 1
  fi
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  export REDIS_PORT REDIS_URL REDIS_DIR REDIS_PID
}

stop_redis() {
  if [ -n "${REDIS_DIR:-}" ]; then
    python3 "$REDIS_FIXTURE_TOOL" stop "$REDIS_DIR"
  elif [ -n "${REDIS_PID:-}" ]; then
    python3 "$REDIS_FIXTURE_TOOL" stop "$REDIS_PID"
  fi
  REDIS_PID=
  REDIS_DIR=
}
