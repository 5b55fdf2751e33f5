#!/usr/bin/env bash
# `make install` into a temporary prefix, then build a program the way a
# user would: `cc app.c $(pkg-config --cflags --libs latchkey)` against the
# installed files (and once statically, with Libs.private), and run it.
# Also checks the installed layout (soname symlinks) and DESTDIR staging.
set -euo pipefail

# output_has PATTERN COMMAND...: whether COMMAND's output has a line
# matching PATTERN. The output is read whole first: `COMMAND | grep -q`
# under pipefail fails with SIGPIPE (status 141) whenever grep stops
# reading before COMMAND is done, as `nm -D` did once the ABI's symbol
# list outgrew the pipe buffer.
output_has() {
    local pattern=$1 out
    shift
    out=$("$@")
    grep -q -- "$pattern" <<<"$out"
}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-install-XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'echo "FAIL  install-test.sh line $LINENO: $BASH_COMMAND" >&2' ERR
prefix="$work/prefix"
cc=${CC:-cc}
passed=0

ok() {
    passed=$((passed + 1))
    echo "ok    install   $1"
}

make -s -C "$root" install PREFIX="$prefix" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log"; echo "FAIL  make install PREFIX=$prefix"; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
lib="$prefix/lib"
test -f "$prefix/include/latchkey.h"
cmp "$root/include/latchkey.h" "$prefix/include/latchkey.h"
test -f "$lib/liblatchkey.so.$version" && test ! -L "$lib/liblatchkey.so.$version"
test "$(readlink "$lib/liblatchkey.so.0")" = "liblatchkey.so.$version"
test "$(readlink "$lib/liblatchkey.so")" = "liblatchkey.so.0"
test -f "$lib/liblatchkey.a"
output_has 'SONAME.*\[liblatchkey.so.0\]' readelf -d "$lib/liblatchkey.so.$version"
ok "layout: header, liblatchkey.so.$version -> .so.0 -> .so, liblatchkey.a, soname"

# Stripped: no debug information (the release profile's), about 3.4 MB with
# TLS (rustls and ring), not 29.
for installed in "$lib/liblatchkey.so.$version" "$lib/liblatchkey.a"; do
    if output_has '\.debug_' readelf -S -W "$installed"; then
        echo "FAIL  $installed carries debug information: make install strips it"; exit 1
    fi
done
size=$(stat -c %s "$lib/liblatchkey.so.$version")
test "$size" -lt 5000000 || { echo "FAIL  liblatchkey.so.$version is $size bytes: not stripped?"; exit 1; }
output_has ' T latchkey_client_open$' nm -D --defined-only "$lib/liblatchkey.so.$version"
ok "stripped: liblatchkey.so.$version ($size bytes, no debug information) and liblatchkey.a"

export PKG_CONFIG_PATH="$lib/pkgconfig"
test "$(pkg-config --modversion latchkey)" = "$version"
grep -q '^Libs.private: .*-l' "$lib/pkgconfig/latchkey.pc"

# Shared: the documented one-liner.
# shellcheck disable=SC2046
"$cc" -std=c99 -Wall -Wextra -Wpedantic -Werror -D_DEFAULT_SOURCE -D_XOPEN_SOURCE=700 \
    -o "$work/app" "$here/install_app.c" "$here/redis_fixture.c" -I"$here" \
    -DREDIS_FIXTURE_TOOL="\"$root/tools/redis_fixture.py\"" \
    $(pkg-config --cflags --libs latchkey)
output_has 'NEEDED.*\[liblatchkey.so.0\]' readelf -d "$work/app"
LD_LIBRARY_PATH="$lib" "$work/app" >"$work/app.out"
ok "shared: cc app.c \$(pkg-config --cflags --libs latchkey): $(cat "$work/app.out")"

# Static: liblatchkey.a plus Libs.private, and no liblatchkey.so needed.
static_libs=$(pkg-config --static --libs latchkey | sed 's/-llatchkey/-Wl,-Bstatic -llatchkey -Wl,-Bdynamic/')
# shellcheck disable=SC2086
"$cc" -std=c99 -Wall -Wextra -Wpedantic -Werror -D_DEFAULT_SOURCE -D_XOPEN_SOURCE=700 \
    -o "$work/app-static" "$here/install_app.c" "$here/redis_fixture.c" -I"$here" \
    -DREDIS_FIXTURE_TOOL="\"$root/tools/redis_fixture.py\"" \
    $(pkg-config --cflags latchkey) $static_libs
if output_has 'NEEDED.*latchkey' readelf -d "$work/app-static"; then
    echo "FAIL  the static build still needs liblatchkey.so"
    exit 1
fi
"$work/app-static" >/dev/null
ok "static: liblatchkey.a with \$(pkg-config --static --libs latchkey)"

# DESTDIR stages the files; the .pc names the final prefix.
make -s -C "$root" install DESTDIR="$work/stage" PREFIX=/opt/latchkey >"$work/stage.log" 2>&1 ||
    { cat "$work/stage.log"; echo "FAIL  make install DESTDIR=..."; exit 1; }
test -f "$work/stage/opt/latchkey/lib/liblatchkey.so.$version"
grep -q '^prefix=/opt/latchkey$' "$work/stage/opt/latchkey/lib/pkgconfig/latchkey.pc"
ok "DESTDIR=... PREFIX=/opt/latchkey stages the files, .pc says /opt/latchkey"

echo "install-test: $passed passed, 0 failed"
