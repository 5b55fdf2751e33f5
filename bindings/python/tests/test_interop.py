"""Python and the Rust command-line tool see the same locks: one library,
one data model in Redis."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

from latchkey import Client

from conftest import CLI

pytestmark = pytest.mark.skipif(
    not CLI.is_file(), reason="target/release/latchkey is not built (cargo build --release)"
)


def cli(url: str, *args: str) -> str:
    out = subprocess.run(
        [str(CLI), "--url", url, *args], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_cli_sees_a_lock_taken_from_python(client: Client, url: str, name: str) -> None:
    assert cli(url, "inspect", name) == "free"
    lock = client.lock(name)
    with lock:
        shown = cli(url, "inspect", name)
        match = re.match(r"held owner=(\w+) fencing=(\d+) ", shown)
        assert match, shown
        assert match.group(1) == lock.token
        assert int(match.group(2)) == lock.fencing_token
    assert cli(url, "inspect", name) == "free"


def test_python_sees_a_lock_held_by_the_cli(client: Client, url: str, name: str) -> None:
    hold = subprocess.Popen(
        [str(CLI), "--url", url, "hold", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert hold.stdout is not None and hold.stdin is not None
        words = hold.stdout.readline().split()
        assert words[:1] == ["acquired"], words
        fencing, token = int(words[1]), words[2]
        info = client.inspect(name)
        assert info is not None
        assert info.owner_token == token and info.fencing_token == fencing
        lock = client.lock(name)
        assert lock.locked()
        assert lock.acquire(blocking=False) is False
        hold.stdin.close()  # the tool releases and exits
        assert lock.acquire(timeout=10), "a Python waiter gets the lock the tool released"
        assert lock.fencing_token > fencing
        lock.release()
        assert hold.wait(10) == 0
    finally:
        if hold.poll() is None:
            hold.kill()
            hold.wait()


def waiters_on(url: str, name: str) -> int:
    out = subprocess.run(
        ["redis-cli", "-u", url, "PUBSUB", "NUMSUB", f"latchkey:{{{name}}}:ch"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[1])


def test_cli_and_python_waiters_are_woken_by_each_others_releases(
    client: Client, url: str, name: str
) -> None:
    lock = client.lock(name)
    lock.acquire()
    hold = subprocess.Popen(
        [str(CLI), "--url", url, "hold", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock.release()  # the waiting tool takes it over
        assert hold.stdout is not None and hold.stdin is not None
        assert hold.stdout.readline().startswith("acquired ")
        # A Python waiter, parked on the lock the tool holds (30 s ttl).
        got: list[bool] = []

        def wait_for_the_tool() -> None:
            got.append(lock.acquire(timeout=20))
            if got[-1]:
                lock.release()

        waiter = threading.Thread(target=wait_for_the_tool)
        waiter.start()
        deadline = time.monotonic() + 10
        while waiters_on(url, name) == 0:
            assert time.monotonic() < deadline, "the Python waiter never subscribed"
            time.sleep(0.01)
        hold.stdin.write("release\n")
        hold.stdin.flush()
        assert hold.stdout.readline().strip() == "released"
        waiter.join(20)
        # Woken by the tool's release: long before the tool's ttl would end.
        assert got == [True], "the Python waiter was not woken by the tool's release"
    finally:
        if hold.stdin is not None:
            hold.stdin.close()
        hold.wait(10)
