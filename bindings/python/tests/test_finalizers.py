"""Garbage collection never frees a handle that is still in use, never
frees or releases a held lock, and never crashes the interpreter, in any
finalization order (reference cycles whose other members still use the
handle in their __del__)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from latchkey import Client

_CYCLE = textwrap.dedent(
    """
    import gc, sys, latchkey

    class User:
        # Part of a cycle with the latchkey object; its __del__ runs after
        # the collector has dealt with the weak references of the cycle.
        def __del__(self):
            try:
                print("outcome", self.use(), flush=True)
            except latchkey.LatchkeyError as e:
                print("refused", type(e).__name__, e, flush=True)

    client = latchkey.Client(sys.argv[1])
    for round in range(20):
        user = User()
        if sys.argv[3] == "lock":
            lock = client.lock(sys.argv[2] + str(round), ttl=5)
            def use(lock=lock):
                if lock.acquire(blocking=False):
                    lock.release()
                return "acquired"
            user.use = use
            lock.user = user
            del lock
        else:
            other = latchkey.Client(sys.argv[1])
            def use(other=other):
                return (other.closed, other.is_locked("x"))
            user.use = use
            other.user = user
            del other
        del user, use
        gc.collect()
    print("done", flush=True)
    """
)


def _run_cycle(url: str, name: str, kind: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", _CYCLE, url, name, kind],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, (out.returncode, out.stdout[-2000:], out.stderr[-3000:])
    assert "done" in out.stdout
    return out.stdout


def test_a_lock_in_a_reference_cycle_is_never_used_after_free(
    url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    out = _run_cycle(url, name, "lock", subprocess_env)
    for line in out.splitlines():
        assert line.startswith(("refused", "outcome acquired", "done")), out


def test_a_client_in_a_reference_cycle_is_never_used_after_free(
    url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    out = _run_cycle(url, name, "client", subprocess_env)
    for line in out.splitlines():
        # Either the call worked, or the client says it is closed; never
        # "closed is False" followed by a crash or a refusal.
        assert line.startswith(("refused", "outcome (False, False)", "done")), out
        if line.startswith("refused"):
            assert "closed" in line, out


def test_a_garbage_collected_lock_keeps_its_hold(client: Client, name: str) -> None:
    import gc

    lock = client.lock(name, ttl=0.5)
    assert lock.acquire()
    token = lock.token
    del lock
    gc.collect()
    # Nobody released it behind its holder's back, and the renewal thread
    # still renews it (so it outlives its ttl).
    import time

    time.sleep(1.0)
    info = client.inspect(name)
    assert info is not None and info.owner_token == token
    client.force_unlock(name)
