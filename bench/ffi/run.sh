#!/usr/bin/env bash
# bench/ffi/run.sh URL: what the cgo and ctypes boundaries cost the Go and
# Python bindings' uncontended cycle, each measured in its own process
# against the same cycle run by a C loop in that process, interleaved
# (see go/main.go and python_cost.py). Uses target/release's library
# (cargo build --release first). Prints JSON lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
URL=${1:?usage: bench/ffi/run.sh URL [CYCLES_PER_BATCH [ROUNDS]]}
shift
OUT=target/ffi-cost
mkdir -p "$OUT"
cc -std=c99 -O2 -shared -fPIC -Iinclude -Ibench/ffi -o "$OUT/libcycles.so" bench/ffi/cycles.c \
  -Ltarget/release -llatchkey -Wl,-rpath,"$PWD/target/release"
(cd bench/ffi/go && go build -o ../../../"$OUT/ffi-cost-go" .)
"$OUT/ffi-cost-go" "$URL" "$@"
LATCHKEY_LIBRARY="$PWD/target/release/liblatchkey.so" PYTHONPATH=bindings/python \
  python3 bench/ffi/python_cost.py "$URL" "$OUT/libcycles.so" "$@"
