"""Sentinel and Cluster clients: the same Lock API over other deployments
(the Rust tests cover failovers; these check the Python constructors)."""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Iterator

import pytest

import latchkey
from latchkey import Client

from conftest import RedisServer


@pytest.fixture
def sentinel() -> Iterator[tuple[RedisServer, RedisServer]]:
    master = RedisServer()
    try:
        watcher = RedisServer(sentinel_of=master.port)
        try:
            yield master, watcher
        finally:
            watcher.stop()
    finally:
        master.stop()


def test_sentinel_client(sentinel: tuple[RedisServer, RedisServer], name: str) -> None:
    master, watcher = sentinel
    with Client.sentinel([watcher.url], "mymaster", master_db=0, command_timeout=2) as client:
        lock = client.lock(name)
        with lock:
            assert lock.owned()
        assert not lock.locked()
    with Client(master.url) as direct:
        with direct.lock(name):
            with Client.sentinel([watcher.url], "mymaster") as client:
                assert client.is_locked(name), "the sentinel client found the same master"


def test_sentinel_arguments() -> None:
    with pytest.raises(latchkey.InvalidArgument):
        Client.sentinel([], "mymaster")
    with pytest.raises(latchkey.InvalidArgument):
        Client.sentinel(["redis://127.0.0.1:1"], "")
    with pytest.raises(TypeError, match="master_name"):
        Client.sentinel(["redis://127.0.0.1:1"], None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="master_db"):
        Client.sentinel(["redis://127.0.0.1:1"], "m", master_db=-1)


@pytest.fixture
def cluster() -> Iterator[list[RedisServer]]:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is needed to create a cluster")
    nodes: list[RedisServer] = []
    try:
        for _ in range(3):
            nodes.append(
                RedisServer(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                )
            )
        subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [f"127.0.0.1:{n.port}" for n in nodes]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        # Every node must agree that the cluster is up.
        deadline = time.monotonic() + 30
        for node in nodes:
            while True:
                info = subprocess.run(
                    ["redis-cli", "-p", str(node.port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout
                if "cluster_state:ok" in info:
                    break
                assert time.monotonic() < deadline, info
                time.sleep(0.05)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_cluster_client(cluster: list[RedisServer]) -> None:
    with Client.cluster([n.url for n in cluster], command_timeout=2) as client:
        # Names spread over the slots of all three masters.
        for i in range(6):
            lock = client.lock(f"cluster-{i}")
            with lock:
                assert lock.owned()
                assert client.inspect(f"cluster-{i}") is not None
            assert not lock.locked()


def test_cluster_arguments() -> None:
    with pytest.raises(latchkey.InvalidArgument):
        Client.cluster([])
    with pytest.raises(TypeError, match="seed_urls"):
        Client.cluster("redis://127.0.0.1:1")
