"""Fixtures: private redis-server processes on free ports, each in its own
temporary directory, ready when the server says so in its log (no sleep
loops), stopped at the end. They come from tools/redis_fixture.py, the
fixture every test suite of the repository uses."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGE_DIR = REPO / "bindings" / "python"
CLI = REPO / "target" / "release" / "latchkey"

# Test this source tree's package (`make python-test` also sets PYTHONPATH).
if str(PACKAGE_DIR) not in sys.path:
    sys.path.insert(0, str(PACKAGE_DIR))
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))
# ... with this tree's build of the library (the package never looks for a
# target/release by itself; `make python-test` sets this too). Subprocesses
# inherit it.
os.environ.setdefault("LATCHKEY_LIBRARY", str(REPO / "target" / "release" / "liblatchkey.so"))

import redis_fixture  # noqa: E402


class RedisServer(redis_fixture.RedisServer):
    """One redis-server process without persistence (extra arguments are
    passed on), or with `sentinel_of=master_port` a sentinel monitoring
    that master as "mymaster" (quorum 1). `kill()` kills it (kill -9),
    `stop()` also removes its directory."""

    def __init__(self, *extra: str, sentinel_of: Optional[int] = None) -> None:
        super().__init__(list(extra), sentinel_of=sentinel_of, prefix="latchkey-py-redis-")


@pytest.fixture
def masters() -> Iterator[list[RedisServer]]:
    """Three private servers, for Redlock (a stopped one is resumed before
    it is killed)."""
    servers: list[RedisServer] = []
    try:
        for _ in range(3):
            servers.append(RedisServer())
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def client(url: str) -> Iterator["object"]:
    import latchkey

    c = latchkey.Client(url)
    yield c
    c.close()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A lock name no other test uses."""
    return f"py-{request.node.name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """The environment for a child Python that imports latchkey."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env
