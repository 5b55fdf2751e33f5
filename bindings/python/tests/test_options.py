"""Options the Python API documents, each shown to change behaviour against
real servers: wait_for_replicas, the Sentinel master's password and
database, renew_every and retry_jitter."""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Iterator

import pytest

import latchkey
from latchkey import Client

from conftest import RedisServer


def cli(url: str, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-u", url, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def scripts_run(url: str) -> int:
    stats = cli(url, "INFO", "commandstats")
    total = 0
    for line in stats.splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            total += int(line.split("calls=")[1].split(",")[0])
    return total


def wait_until(what: str, condition: object, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


@pytest.fixture
def replicated() -> Iterator[tuple[RedisServer, RedisServer]]:
    master = RedisServer()
    replica = RedisServer("--replicaof", "127.0.0.1", str(master.port))
    try:
        wait_until(
            "the replica is in sync",
            lambda: "master_link_status:up" in cli(replica.url, "INFO", "replication"),
        )
        yield master, replica
    finally:
        replica.stop()
        master.stop()


def test_wait_for_replicas_confirms_or_gives_the_lock_back(
    replicated: tuple[RedisServer, RedisServer], name: str
) -> None:
    master, replica = replicated
    confirmed = Client(master.url, wait_for_replicas=(1, 1.0))
    with confirmed.lock(name):
        # The one replica had the lock before acquire returned.
        assert cli(replica.url, "EXISTS", f"latchkey:{{{name}}}") == "1"
    confirmed.close()

    too_many = Client(master.url, wait_for_replicas=(2, 0.2))
    # Not confirmed by enough replicas: not acquired (LATCHKEY_TIMEOUT).
    assert too_many.lock(name).acquire(timeout=5) is False
    # ... and what too few replicas confirmed was given back.
    assert cli(master.url, "EXISTS", f"latchkey:{{{name}}}") == "0"
    too_many.close()


def test_sentinel_master_password_and_db_are_used(name: str) -> None:
    master = RedisServer("--requirepass", "s3cret/pw")
    sentinel = RedisServer(sentinel_of=master.port)
    try:
        client = Client.sentinel(
            [sentinel.url], "mymaster", master_password="s3cret/pw", master_db=2
        )
        with client.lock(name):
            exists = subprocess.run(
                [
                    "redis-cli",
                    "-p",
                    str(master.port),
                    "-a",
                    "s3cret/pw",
                    "--no-auth-warning",
                    "-n",
                    "2",
                    "EXISTS",
                    f"latchkey:{{{name}}}",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            assert exists == "1", "the lock is not in database 2"
        client.close()
        without = Client.sentinel([sentinel.url], "mymaster", command_timeout=2.0)
        with pytest.raises(latchkey.LatchkeyError) as refused:
            without.lock(name).acquire(timeout=2)
        assert "s3cret" not in str(refused.value)
        without.close()
    finally:
        sentinel.stop()
        master.stop()


def test_renew_every_sets_the_renewal_period(client: Client, url: str, name: str) -> None:
    lock = client.lock(name, ttl=30, renew_every=0.1)
    with lock:
        before = scripts_run(url)
        # With the default period (ttl/3 = 10 s) five renewals take 50 s.
        wait_until("five renewals", lambda: scripts_run(url) >= before + 5, limit=10)
        lock.check()


def test_retry_jitter_reaches_the_library_and_delays_retries(client: Client, name: str) -> None:
    with pytest.raises(latchkey.InvalidArgument):
        client.lock(name, retry_jitter=11).acquire(blocking=False)
    delays = []
    for trial in range(3):
        trial_name = f"{name}-{trial}"
        holder = client.lock(trial_name, ttl=0.3, auto_renew=False)
        assert holder.acquire()
        expires = time.monotonic() + 0.3
        # The holder's lease runs out without a release message.
        waiter = client.lock(trial_name, retry_jitter=1.0)
        assert waiter.acquire(timeout=30)
        delays.append(time.monotonic() - expires)
        waiter.release()
    # A random pause below 1 s each time: all three under 50 ms has a
    # chance of (5 %)^3.
    assert any(d > 0.05 for d in delays), delays
    assert all(d < 8 for d in delays), delays


def test_fair_serves_waiters_in_arrival_order_after_a_holder_died(
    client: Client, url: str, name: str
) -> None:
    # A holder that died leaves its key until its lease runs out; nobody
    # releases it. Fair waiters queued one after another then get the lock
    # in arrival order (an ordinary lock lets the first to look again take
    # it: tests/fair.rs).
    cli(url, "SET", f"latchkey:{{{name}}}", "a-holder-that-died", "PX", "2000")
    taken: list[int] = []

    def waiter(index: int) -> None:
        lock = client.lock(name, fair=True, retry_jitter=0.05)
        assert lock.acquire(timeout=60)
        taken.append(index)
        lock.release()

    threads = []
    for index in range(4):
        thread = threading.Thread(target=waiter, args=(index,))
        thread.start()
        threads.append(thread)
        wait_until(
            f"waiter {index} queued",
            lambda queued=index + 1: int(cli(url, "ZCARD", f"latchkey:{{{name}}}:qa")) >= queued,
        )
    for thread in threads:
        thread.join()
    assert taken == [0, 1, 2, 3]


def test_fair_is_refused_with_reentrant(client: Client, name: str) -> None:
    with pytest.raises(latchkey.InvalidArgument, match="fair and reentrant"):
        client.lock(name, fair=True, reentrant=True).acquire(blocking=False)
