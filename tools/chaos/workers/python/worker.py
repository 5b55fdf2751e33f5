#!/usr/bin/env python3
"""The chaos checker's Python worker: the same loop as the Rust worker
(tools/chaos/workers/rust/main.rs) through the ctypes binding. It uses only
the binding's stable surface: Client(url), client.lock(name, ttl=...,
auto_renew=..., on_lost=...), lock.acquire(blocking, timeout),
lock.fencing_token, lock.check(), lock.release(), client.fenced_write.

usage: worker.py --deployment SPEC --storage URL --names A,B --ttl-ms N
                 --seed N --id ID --history FILE --until-ns N
                 [--command-timeout-ms N] [--long-percent N]
                 [--renew-percent N] [--fair 0|1] [--semaphore N]
With --fair 1 every lock is fair (client.lock(..., fair=True)) and every
acquire line says "fair": true. With --semaphore N (N > 0) every name is a
semaphore of N permits (client.semaphore(name, N)) and each hold takes 1
of them, sometimes 2 (its Permit is what is checked and released); its
acquire line says "size": N, "permits": P.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from typing import Any, Optional

import latchkey

# Exception classes of the binding -> the error kinds the Rust core names.
ERROR_KINDS = {
    "LockTimeout": "Timeout",
    "NotHeld": "NotHeld",
    "LostError": "Lost",
    "ConnectionFailed": "Connection",
    "NoQuorum": "NoQuorum",
    "Cancelled": "Cancelled",
    "ServerError": "Server",
    "InvalidArgument": "InvalidArgument",
}


class History:
    """One JSON object per line, one write(2) per line (a SIGKILL loses at
    most the call in flight)."""

    def __init__(self, path: str, worker: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._worker = worker
        self._mutex = threading.Lock()

    def log(self, **fields: Any) -> None:
        record = {"w": self._worker, "lang": "python", "wall": time.time_ns(), **fields}
        line = (json.dumps(record) + "\n").encode()
        with self._mutex:
            os.write(self._fd, line)


def error_kind(e: BaseException) -> str:
    return ERROR_KINDS.get(type(e).__name__, type(e).__name__)


def open_client(spec: str, timeout: float) -> latchkey.Client:
    kind, _, rest = spec.partition(":")
    options = {"connect_timeout": timeout, "command_timeout": timeout}
    if kind == "single":
        return latchkey.Client(rest, **options)
    if kind == "redlock":
        return latchkey.Client.redlock(rest.split(","), **options)
    if kind == "cluster":
        return latchkey.Client.cluster(rest.split(","), **options)
    if kind == "sentinel":
        master, _, urls = rest.partition(":")
        return latchkey.Client.sentinel(urls.split(","), master, **options)
    raise SystemExit(f"unknown deployment kind {kind}")


def plant_variant(variant: str) -> None:
    """The binding's deliberately broken variants, for the checker's
    self-test (tools/chaos/selftest.py): planted in the binding's classes in
    this process only, chosen by LATCHKEY_CHAOS_VARIANT as the library's own
    are (src/chaos.rs). Others are the library's and need nothing here.

    - python-check-ignores-loss: Lock.check() passes after the lease was
      lost (it swallows LostError), so the holder believes it still holds."""
    if variant == "python-check-ignores-loss":
        check = latchkey.Lock.check

        def check_ignoring_loss(self: latchkey.Lock) -> None:
            try:
                check(self)
            except latchkey.LostError:
                pass

        setattr(latchkey.Lock, "check", check_ignoring_loss)


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("deployment", "storage", "names", "id", "history"):
        parser.add_argument("--" + name, required=True)
    for name in ("ttl-ms", "seed", "until-ns"):
        parser.add_argument("--" + name, required=True, type=int)
    parser.add_argument("--command-timeout-ms", type=int, default=1000)
    # How many holds in a hundred outlive the ttl (renewed, or lost).
    parser.add_argument("--long-percent", type=int, default=15)
    # How many holds in a hundred the watchdog renews.
    parser.add_argument("--renew-percent", type=int, default=70)
    # Whether every lock is fair (first come, first served).
    parser.add_argument("--fair", type=int, default=0)
    # Semaphores of this size instead of locks (0: locks).
    parser.add_argument("--semaphore", type=int, default=0)
    args = parser.parse_args()
    plant_variant(os.environ.get("LATCHKEY_CHAOS_VARIANT", ""))
    rng = random.Random(args.seed)
    history = History(args.history, args.id)
    timeout = args.command_timeout_ms / 1000
    ttl_ms: int = args.ttl_ms
    client = open_client(args.deployment, timeout)
    storage = latchkey.Client(args.storage, connect_timeout=timeout, command_timeout=timeout)

    def on_lost(lost: Any) -> None:
        history.log(op="lost", name=lost.name, fence=lost.fencing_token,
                    t=time.monotonic_ns(), reason=lost.reason)

    fair = bool(args.fair)
    size: int = args.semaphore
    locks: list[tuple[str, Any, Any]] = [
        (name,
         client.semaphore(name, size, ttl=ttl_ms / 1000, on_lost=on_lost),
         client.semaphore(name, size, ttl=ttl_ms / 1000, auto_renew=False, on_lost=on_lost))
        for name in args.names.split(",")
    ] if size else [
        (name,
         client.lock(name, ttl=ttl_ms / 1000, on_lost=on_lost, fair=fair),
         client.lock(name, ttl=ttl_ms / 1000, auto_renew=False, on_lost=on_lost, fair=fair))
        for name in args.names.split(",")
    ]
    history.log(op="start", t=time.monotonic_ns())
    seq = 0
    while time.monotonic_ns() < args.until_ns:
        seq += 1
        name, renewed, plain = rng.choice(locks)
        renew = rng.randrange(100) < args.renew_percent
        lock = renewed if renew else plain
        roll = rng.random()
        # The binding's stable surface has no cancel handle: blocking,
        # timeout and try only.
        mode = "blocking" if roll < 0.1 else "timeout" if roll < 0.7 else "try"
        permits = 2 if size > 1 and rng.randrange(100) < 25 else 1
        wait_ms = 100 + rng.randrange(3 * ttl_ms)
        event: dict[str, Any] = dict(op="acquire", seq=seq, name=name, mode=mode,
                                     renew=renew, ttl_ms=ttl_ms)
        if fair:
            event["fair"] = True
        if size:
            event.update(size=size, permits=permits)
        if mode != "blocking":
            event["deadline_ms"] = 0 if mode == "try" else wait_ms
        t0 = time.monotonic_ns()
        err: Optional[BaseException] = None
        try:
            if size:
                # A Permit (or None from a try that found too few free).
                permit = (lock.try_acquire(permits) if mode == "try" else
                          lock.acquire(permits, timeout=None if mode == "blocking" else wait_ms / 1000))
                got = permit is not None
                if permit is not None:
                    lock = permit
            elif mode == "blocking":
                got = lock.acquire()
            elif mode == "try":
                got = lock.acquire(blocking=False)
            else:
                got = lock.acquire(timeout=wait_ms / 1000)
        except latchkey.LatchkeyError as e:
            got, err = False, e
        t1 = time.monotonic_ns()
        event.update(t0=t0, t1=t1, ok=got)
        if not got:
            event["err"] = error_kind(err) if err else "Timeout"
            if err:
                event["msg"] = str(err)
            history.log(**event)
            time.sleep(rng.randrange(50) / 1000)
            continue
        fence = lock.fencing_token
        hold_id = getattr(lock, "token", None) or f"{args.id}:{seq}"
        history.log(**event, hold=hold_id, fence=fence)
        hold(history, storage, lock, name, seq, fence, hold_id, rng, ttl_ms, args.id,
             min(85, args.long_percent))
    history.log(op="stop", t=time.monotonic_ns())
    return 0


def hold(history: History, storage: latchkey.Client, lock: Any, name: str, seq: int,
         fence: int, hold_id: str, rng: random.Random, ttl_ms: int, worker: str,
         long_percent: int) -> None:
    common = dict(seq=seq, name=name, hold=hold_id, fence=fence)
    t0 = time.monotonic_ns()
    try:
        outcome = storage.fenced_write(f"res-{name}", fence, f"{worker}:{seq}".encode())
        result: dict[str, Any] = dict(ok=outcome.written, highest=outcome.highest_token)
    except latchkey.LatchkeyError as e:
        result = dict(ok=False, err=error_kind(e))
    history.log(op="write", **common, t0=t0, t1=time.monotonic_ns(), **result)
    roll = rng.randrange(100)
    if roll < long_percent:
        hold_ms = ttl_ms + rng.randrange(ttl_ms)
    elif roll < long_percent + 15:
        hold_ms = ttl_ms // 3 + rng.randrange(ttl_ms)
    else:
        hold_ms = rng.randrange(max(1, ttl_ms // 4))
    time.sleep(hold_ms / 1000)
    for op, call in (("check", lock.check), ("release", lock.release)):
        t0 = time.monotonic_ns()
        try:
            call()
            result = dict(ok=True)
        except latchkey.LatchkeyError as e:
            result = dict(ok=False, err=error_kind(e), msg=str(e))
        history.log(op=op, **common, t0=t0, t1=time.monotonic_ns(), **result)


if __name__ == "__main__":
    sys.exit(main())
