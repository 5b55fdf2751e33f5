#!/usr/bin/env python3
"""contend: take a distributed lock COUNT times and, while holding it, do a
deliberately non-atomic update of a shared counter file: read the number,
write it back plus one. Run several copies (next to the Rust, C and Go
workers of `make demo`): if the lock works, the counter ends at the total
number of acquisitions.

usage: contend.py URL NAME COUNT COUNTER_FILE
  e.g. LATCHKEY_LIBRARY=target/release/liblatchkey.so PYTHONPATH=bindings/python \\
           python3 examples/python/contend.py redis://127.0.0.1:6379 demo 10 /tmp/counter
  (or with the package pip-installed: python3 examples/python/contend.py ...)
"""

from __future__ import annotations

import os
import sys

import latchkey


def read_counter(path: str) -> int:
    """The counter's value; a missing or empty file counts as 0."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return 0
    return int(text) if text else 0


def write_counter(path: str, value: int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(f"usage: {argv[0]} URL NAME COUNT COUNTER_FILE", file=sys.stderr)
        return 2
    url, name, count_text, counter = argv[1:]
    try:
        count = int(count_text)
        if count < 0:
            raise ValueError
    except ValueError:
        print(f"contend: COUNT must be a number >= 0, got '{count_text}'", file=sys.stderr)
        return 2

    pid = os.getpid()
    try:
        with latchkey.Client(url) as client:
            lock = client.lock(name)
            for _ in range(count):
                # Waits as long as it takes; the release (at the end of the
                # block) raises NotHeld if the lease was lost meanwhile.
                with lock:
                    value = read_counter(counter)
                    write_counter(counter, value + 1)
                    print(
                        f"[python pid {pid:>6}] holds '{name}' fencing token "
                        f"{lock.fencing_token}, counter {value} -> {value + 1}",
                        flush=True,
                    )
    except latchkey.LatchkeyError as e:
        print(f"contend: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"contend: cannot update {counter}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
