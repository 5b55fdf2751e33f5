# latchkey: `make demo` (processes in several languages contend for one lock
# on a private redis-server) and `make test` (every test). Both install what
# they need, or stop and say what to install.

SHELL := /bin/bash
CARGO ?= cargo
PREFIX ?= /usr/local

.PHONY: all build release test rust-test lint demo bench deps redis-server clean

all: release

## Dependencies ---------------------------------------------------------------

# redis-server and redis-cli come from the system package manager.
redis-server:
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing redis-server and redis-tools with apt-get"; \
	    (apt-get install -y redis-server redis-tools >/dev/null 2>&1 || \
	     (apt-get update >/dev/null && apt-get install -y redis-server redis-tools >/dev/null)) || \
	     { echo "apt-get could not install redis-server; install redis-server and redis-tools yourself" >&2; exit 1; }; \
	  else \
	    echo "redis-server is missing: install it (Debian/Ubuntu: sudo apt-get install -y redis-server redis-tools; macOS: brew install redis)" >&2; \
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

test: deps lint rust-test

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --quiet

rust-test:
	bash tools/with-redis $(CARGO) test --release

## Demo and benchmarks ---------------------------------------------------------

demo: release
	@bash examples/demo.sh

bench: release
	@bash bench/run.sh

clean:
	$(CARGO) clean
