# Sourced by the demo, the benchmarks and tools/with-redis: start_redis starts a private
# redis-server on a free port in a temporary directory and sets REDIS_PORT,
# REDIS_URL, REDIS_DIR and REDIS_PID; stop_redis stops it. Readiness is the
# server's own "Ready to accept connections" line, not a sleep.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_redis() {
  REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-redis.XXXXXX")
  local attempt
  for attempt in 1 2 3 4 5; do
    REDIS_PORT=$(free_port)
    mkfifo "$REDIS_DIR/log"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
      --save "" --appendonly no --daemonize no --logfile "" "$@" >"$REDIS_DIR/log" 2>&1 &
    REDIS_PID=$!
    if timeout 20 grep -q -m1 "Ready to accept connections" <"$REDIS_DIR/log"; then
      # Keep draining the server's output so it never blocks on a full pipe.
      cat <"$REDIS_DIR/log" >/dev/null &
      REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
      export REDIS_PORT REDIS_URL REDIS_DIR REDIS_PID
      return 0
    fi
    kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null
    rm -f "$REDIS_DIR/log"
  done
  echo "redis-server did not start" >&2
  return 1
}

stop_redis() {
  if [ -n "${REDIS_PID:-}" ]; then
    kill "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
  fi
  [ -n "${REDIS_DIR:-}" ] && rm -rf "$REDIS_DIR"
  REDIS_PID=
}
