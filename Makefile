# latchkey: `make demo` (processes in several languages contend for one lock
# on a private redis-server) and `make test` (every test). Both install what
# they need, or stop and say what to install.

SHELL := /bin/bash
CARGO ?= cargo
PREFIX ?= /usr/local

.PHONY: all build release test rust-test test-redis6 test-repeat lint demo bench ffi-cost deps redis-server clean chaos chaos-short chaos-build check-package package

all: release

## Dependencies ---------------------------------------------------------------

# redis-server and redis-cli come from the system package manager; openssl
# (the command) makes the TLS tests' certificates.
redis-server:
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v openssl >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing redis-server, redis-tools and openssl with apt-get"; \
	    (apt-get install -y redis-server redis-tools openssl >/dev/null 2>&1 || \
	     (apt-get update >/dev/null && apt-get install -y redis-server redis-tools openssl >/dev/null)) || \
	     { echo "apt-get could not install redis-server; install redis-server, redis-tools and openssl yourself" >&2; exit 1; }; \
	  else \
	    echo "redis-server, redis-cli or openssl is missing: install them (Debian/Ubuntu: sudo apt-get install -y redis-server redis-tools openssl; macOS: brew install redis openssl)" >&2; \
	    exit 1; \
	  fi; \
	fi
	@redis-server --version | head -1

deps: redis-server
	@command -v $(CARGO) >/dev/null || { echo "cargo is missing: install Rust (rustup)" >&2; exit 1; }

## Build ----------------------------------------------------------------------

build: deps
	$(CARGO) build

release: deps
	$(CARGO) build --release

## Tests ----------------------------------------------------------------------

test: deps lint package rust-test test-redis6 ffi-test c-example go-test python-test fuzz-short chaos-short

lint: check-package
	python3 tools/check-claims.py
	python3 tools/check-cycles.py
	python3 bench/readme_figures.py --check
	python3 bench/test_rounds.py
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --quiet

# The published crate (tools/check-package.py): `cargo package --list`
# holds every source of the library and the tool, build.rs and what it
# reads, the header, README and licenses, and nothing else; the metadata is
# there and no dependency is a path. Offline, nothing built (part of lint).
check-package:
	python3 tools/check-package.py

# The same, then cargo's verify step: the packaged crate, unpacked in
# target/package, builds by itself (build.rs included), offline.
package: check-package
	$(CARGO) package --offline --allow-dirty

# The test binaries run three at a time (tools/run-rust-tests.py; JOBS=1 runs
# them one after another as `cargo test` would); FILTER arguments go to every
# binary, e.g. `make rust-test CARGO_TEST_FLAGS=fencing`.
JOBS ?= 3
rust-test: deps
	CARGO=$(CARGO) bash tools/with-redis python3 tools/run-rust-tests.py --jobs $(JOBS) $(CARGO_TEST_FLAGS)

# The oldest supported server, Redis 6.2 (no sharded pub/sub, other ACL and
# AOF defaults), from a pinned download (tools/redis-6.2.sh): the test files
# that exercise what differs between versions (handoff and pub/sub on every
# deployment, the scripts, ACL, AOF), or every one with REDIS6_TESTS=all.
REDIS6_TESTS ?= acl,semaphore,waiting,attack_queue,chaos_findings,cluster,lock_basics,late_copies,holds,fencing,urls_and_auth,sentinel_attack2,exclusion,close
test-redis6: deps
	bash tools/redis-6.2.sh target/redis-6.2
	REDIS_SERVER=$(CURDIR)/target/redis-6.2/redis-server CARGO=$(CARGO) \
	  python3 tools/run-rust-tests.py --jobs $(JOBS) --logs target/rust-test-logs-redis6 \
	  --only $(REDIS6_TESTS) $(CARGO_TEST_FLAGS)

# Runs `make rust-test` N times in a row (every test binary each time, so a
# failure in one does not hide the others) and counts failures per test.
N ?= 20
test-repeat: deps
	bash tools/repeat-tests.sh $(N) rust-test CARGO_TEST_FLAGS=--no-fail-fast

## Fuzzing --------------------------------------------------------------------

# What parses outside bytes (URLs and their redaction, the C ABI's
# arguments): the stable property tests with many cases, then the
# coverage-guided targets in fuzz/ for FUZZ_SECONDS each, where a nightly
# toolchain and cargo-fuzz are installed (cargo install cargo-fuzz). Then
# the long randomized runs against real servers: the lock protocol against
# late copies of its own commands (tests/late_copies.rs, REPLAY_CASES random
# sequences; LATCHKEY_REPLAY_SEED=N replays the seed a failure printed), and
# cluster reshards under a busy lock (too load-sensitive for `make test`).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := url ffi_args
REPLAY_CASES ?= 300
.PHONY: fuzz fuzz-short fuzz-targets
fuzz:
	LATCHKEY_PROPERTY_CASES=200000 $(CARGO) test --release --lib properties
	$(CARGO) test --release --test cluster_migration -- --ignored
	$(MAKE) fuzz-targets
	LATCHKEY_REPLAY_CASES=$(REPLAY_CASES) $(CARGO) test --release --test late_copies replaying_the_past -- --nocapture

# The short run `make test` does: only the cargo-fuzz targets, 10 s each,
# skipped without nightly and cargo-fuzz.
fuzz-short:
	$(MAKE) fuzz-targets FUZZ_SECONDS=10

fuzz-targets:
	@set -o pipefail; if $(CARGO) +nightly fuzz --version >/dev/null 2>&1; then \
	  for target in $(FUZZ_TARGETS); do \
	    echo "cargo +nightly fuzz run $$target (for $(FUZZ_SECONDS) s)"; \
	    $(CARGO) +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) 2>&1 | tail -n 25 || exit 1; \
	  done; \
	else \
	  echo "fuzz targets skipped: they need a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz)"; \
	fi

## Demo and benchmarks ---------------------------------------------------------

demo: release c-example go-example
	@bash examples/demo.sh

# latchkey against the floor and the peer libraries (Rust, C, Python, Go) in
# one run on the same redis-server processes, about 5-10 minutes; writes
# bench/results/latest.jsonl, bench/results/latency.png and BENCHMARKS.md.
# The peers live in bench-only environments that bench/run.sh creates.
bench: release
	@bash bench/run.sh

# What the cgo and ctypes boundaries cost the bindings' uncontended cycle:
# in one Go and one Python process, interleaved, the binding's cycle, the
# same C calls made directly, the cycle run by a C loop in that process and
# a no-op call (bench/ffi), on a private redis-server. JSON lines.
ffi-cost: deps
	$(CARGO) build --release --lib
	bash tools/with-redis bash -c 'bench/ffi/run.sh "$$LATCHKEY_TEST_URL"'

clean:
	$(CARGO) clean

## C ABI: tests, header, install, example ---------------------------------------

.PHONY: ffi-test header install c-example valgrind pkg-config go-test go-example python-test python-lint python-stress

# valgrind and pkg-config (for the C tests) come from the system package manager.
valgrind:
	@if ! command -v valgrind >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing valgrind with apt-get"; \
	    (apt-get install -y valgrind >/dev/null 2>&1 || \
	     (apt-get update >/dev/null && apt-get install -y valgrind >/dev/null)) || \
	     { echo "apt-get could not install valgrind; install it yourself" >&2; exit 1; }; \
	  else \
	    echo "valgrind is missing: install it (Debian/Ubuntu: sudo apt-get install -y valgrind)" >&2; \
	    exit 1; \
	  fi; \
	fi
	@valgrind --version

pkg-config:
	@if ! command -v pkg-config >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing pkg-config with apt-get"; \
	    (apt-get install -y pkg-config >/dev/null 2>&1 || \
	     (apt-get update >/dev/null && apt-get install -y pkg-config >/dev/null)) || \
	     { echo "apt-get could not install pkg-config; install it yourself" >&2; exit 1; }; \
	  else \
	    echo "pkg-config is missing: install it (Debian/Ubuntu: sudo apt-get install -y pkg-config)" >&2; \
	    exit 1; \
	  fi; \
	fi

# The C tests (ffi-tests/): shared, static, valgrind, ASan+UBSan, install.
ffi-test: deps valgrind pkg-config target/native-static-libs.txt
	$(CARGO) build --release
	$(MAKE) -C ffi-tests test

# Regenerates include/latchkey.h from src/ffi (a unit test fails while the
# committed header is stale).
header:
	LATCHKEY_WRITE_HEADER=1 $(CARGO) build --lib

# The system libraries that a program linking liblatchkey.a needs, as rustc
# reports them; used for the .pc file's Libs.private and the static C tests.
# rustc prints them only when it builds the crate, hence the clean first.
target/native-static-libs.txt: Cargo.toml Cargo.lock build.rs
	@mkdir -p target
	$(CARGO) clean --release -p latchkey --quiet
	$(CARGO) rustc --release --lib --crate-type staticlib --quiet -- --print native-static-libs 2>&1 \
	  | sed -n 's/^note: native-static-libs: //p' > $@.tmp
	@test -s $@.tmp || { rm -f $@.tmp; echo "rustc did not report the native static libraries" >&2; exit 1; }
	@mv $@.tmp $@
	$(CARGO) build --release --quiet

# make install [PREFIX=/usr/local] [DESTDIR=]: the header, liblatchkey.so.X.Y.Z
# with its .so.X and .so links, liblatchkey.a and latchkey.pc. The libraries
# are stripped ($(STRIP): the shared one of everything but its dynamic
# symbols, the static one of debug information): the release profile keeps
# debug information for the repository's own tools, 17 MB of the 19.
STRIP ?= strip
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
INSTALL_LIB := $(DESTDIR)$(PREFIX)/lib
install: target/native-static-libs.txt
	$(CARGO) build --release --lib
	install -d $(DESTDIR)$(PREFIX)/include $(INSTALL_LIB)/pkgconfig
	install -m 644 include/latchkey.h $(DESTDIR)$(PREFIX)/include/latchkey.h
	install -m 755 target/release/liblatchkey.so $(INSTALL_LIB)/liblatchkey.so.$(VERSION)
	$(STRIP) $(INSTALL_LIB)/liblatchkey.so.$(VERSION)
	ln -sfn liblatchkey.so.$(VERSION) $(INSTALL_LIB)/liblatchkey.so.$(SOVERSION)
	ln -sfn liblatchkey.so.$(SOVERSION) $(INSTALL_LIB)/liblatchkey.so
	install -m 644 target/release/liblatchkey.a $(INSTALL_LIB)/liblatchkey.a
	$(STRIP) --strip-debug $(INSTALL_LIB)/liblatchkey.a
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e "s|@LIBS_PRIVATE@|$$(cat target/native-static-libs.txt)|g" \
	    latchkey.pc.in > $(INSTALL_LIB)/pkgconfig/latchkey.pc
	chmod 644 $(INSTALL_LIB)/pkgconfig/latchkey.pc

# examples/c/contend.c, into target/examples-c/contend (static: runs anywhere).
c-example: deps
	$(MAKE) -C examples/c

## Go binding: tests and example ----------------------------------------------

# bindings/go: gofmt, go vet, then go test -race (the tests start their own
# redis-server and use the Rust tool target/release/latchkey for interop).
# The binding links target/release/liblatchkey.a, hence the cargo build.
# gofmt and go vet also check the examples and tests/fair_interop's Go
# waiter (which tests/fair_interop.rs builds and runs).
go-test: deps target/native-static-libs.txt
	@command -v go >/dev/null || { echo "go is missing: install Go 1.24 or newer (Debian: apt-get install golang)" >&2; exit 1; }
	$(CARGO) build --release
	@unformatted=$$(gofmt -l bindings/go examples/go tests/fair_interop/go); \
	  if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted: $$unformatted" >&2; exit 1; fi
	cd bindings/go && go vet ./... && cd ../../examples/go && go vet ./... && cd ../../tests/fair_interop/go && go vet ./...
	cd bindings/go && go test -race -count=1 ./...

# examples/go/contend, into target/examples-go/contend (static: runs
# anywhere). Without Go the demo runs without its Go workers.
go-example: deps
	@if ! command -v go >/dev/null; then \
	  echo "go is missing: the demo runs without Go workers (install Go 1.24 or newer)"; \
	else \
	  set -e; \
	  echo "$(CARGO) build --release --lib"; $(CARGO) build --release --lib; \
	  mkdir -p target/examples-go; \
	  echo "go build -o target/examples-go/contend ./contend (in examples/go)"; \
	  cd examples/go && go build -o ../../target/examples-go/contend ./contend; \
	fi

## Python binding: tests --------------------------------------------------------

# bindings/python (ctypes over target/release/liblatchkey.so, which
# LATCHKEY_LIBRARY names: the package never looks for a target/release by
# itself): the tests start their own redis-server processes and use the Rust
# tool target/release/latchkey for interop, hence the cargo build.
# test_packaging.py also pip-installs the package into a fresh virtualenv
# (setuptools-rust builds the crate into this target directory: the same
# build as cargo's, so nothing is rebuilt).
PYTHON_LIBRARY := LATCHKEY_LIBRARY=$(CURDIR)/target/release/liblatchkey.so
python-test: deps python-lint
	@python3 -c 'import venv, ensurepip' 2>/dev/null || \
	  { echo "python3 cannot make virtualenvs (test_packaging.py needs one): install python3-venv" >&2; exit 1; }
	@python3 -c 'import pytest' 2>/dev/null || \
	  { echo "installing pytest with pip"; python3 -m pip install -q pytest; } || \
	  { echo "pytest is missing and pip could not install it: python3 -m pip install pytest" >&2; exit 1; }
	$(CARGO) build --release
	$(PYTHON_LIBRARY) PYTHONPATH=bindings/python python3 -m pytest -q bindings/python/tests

# mypy --strict and ruff, as configured in bindings/python/pyproject.toml;
# installed with pip when missing (the versions they were last run with).
# The same for tests/fair_interop's Python waiter (run by tests/fair_interop.rs).
PYTHON_LINTERS := mypy==2.4.1 ruff==0.17.6
PYTHON_WAITER := ../../tests/fair_interop/waiter.py
python-lint:
	@python3 -m mypy --version >/dev/null 2>&1 && python3 -m ruff --version >/dev/null 2>&1 || \
	  { echo "installing $(PYTHON_LINTERS) with pip"; python3 -m pip install -q $(PYTHON_LINTERS); } || \
	  { echo "mypy or ruff is missing and pip could not install them: python3 -m pip install $(PYTHON_LINTERS)" >&2; exit 1; }
	cd bindings/python && python3 -m mypy && python3 -m ruff check latchkey tests && python3 -m ruff format --check latchkey tests
	cd bindings/python && MYPYPATH=. python3 -m mypy $(PYTHON_WAITER) && \
	  python3 -m ruff check --config pyproject.toml $(PYTHON_WAITER) && \
	  python3 -m ruff format --check --config pyproject.toml $(PYTHON_WAITER)

# Longer seeded storms of Ctrl-C, garbage collections and asyncio task
# cancellations against real servers (LATCHKEY_STRESS_ITERATIONS cycles per
# storm; the suite runs fewer).
LATCHKEY_STRESS_ITERATIONS ?= 20000
python-stress: deps
	$(CARGO) build --release
	LATCHKEY_STRESS_ITERATIONS=$(LATCHKEY_STRESS_ITERATIONS) $(PYTHON_LIBRARY) PYTHONPATH=bindings/python \
	  python3 -m pytest -q bindings/python/tests/test_signals.py \
	  bindings/python/tests/test_asyncio.py::test_cancellation_storm_leaves_no_lock_held \
	  bindings/python/tests/test_asyncio.py::test_cancelling_many_waiters_at_random
## Chaos: faults at random, histories, checker (tools/chaos) -------------------

# make chaos [DURATION=600] [SEED=42] [PROFILE=long|short]: every deployment
# and language under a nemesis; writes RELIABILITY.md. A seed replays the
# same schedule of faults and operations (the run prints its seed).
DURATION ?= 600
PROFILE ?= long
SEED ?=
CHAOS_SEED = $(if $(SEED),--seed $(SEED),)

# The workers: Rust (an example target), C (static, with the C tests'
# warnings and the system libraries the Go binding links too), Go; and the
# deliberately broken variants of the library (cargo feature chaos-variants)
# in their own target directory, never in a release artifact, with a C and
# a Go worker linked against them (*-variants; the Go one with the build tag
# latchkey_chaos, which also has the binding's own broken variants). A run
# fails when a language's worker is missing.
# $(call chaos_c_worker,OUTPUT,STATIC_LIBRARY)
chaos_c_worker = $(CC) -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -D_DEFAULT_SOURCE -Iinclude \
	  -o $(1) tools/chaos/workers/c/worker.c $(2) -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -pthread
chaos-build: deps
	@command -v go >/dev/null || { echo "go is missing: the chaos run needs its Go workers (install Go 1.24 or newer)" >&2; exit 1; }
	$(CARGO) build --release --lib --example chaos-worker
	CARGO_TARGET_DIR=target/chaos-variants $(CARGO) build --release --features chaos-variants --lib --example chaos-worker
	@mkdir -p target/chaos
	$(call chaos_c_worker,target/chaos/c-worker,target/release/liblatchkey.a)
	$(call chaos_c_worker,target/chaos/c-worker-variants,target/chaos-variants/release/liblatchkey.a)
	cd tools/chaos/workers/go && go vet ./... && go build -o ../../../../target/chaos/go-worker . \
	  && go build -tags latchkey_chaos -o ../../../../target/chaos/go-worker-variants .

chaos: chaos-build
	python3 tools/chaos/run.py --duration $(DURATION) --profile $(PROFILE) $(CHAOS_SEED) --report RELIABILITY.md

# The checker's unit tests, the short profile (about 2 minutes) and the
# checker's self-test (each broken variant must be caught in every language
# it affects, about 3 minutes); part of make test.
chaos-short: chaos-build
	cd tools/chaos && python3 -m unittest -q test_checker
	python3 tools/chaos/run.py --duration 120 --profile short $(CHAOS_SEED)
	python3 tools/chaos/selftest.py
