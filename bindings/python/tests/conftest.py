"""Fixtures: private redis-server processes on free ports, each in its own
temporary directory, ready when the server says so on its stdout (no sleep
loops), stopped at the end."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGE_DIR = REPO / "bindings" / "python"
CLI = REPO / "target" / "release" / "latchkey"
READY = "Ready to accept connections"

# Test this source tree's package (`make python-test` also sets PYTHONPATH).
if str(PACKAGE_DIR) not in sys.path:
    sys.path.insert(0, str(PACKAGE_DIR))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process without persistence (extra arguments are
    passed on), or with `sentinel_of=master_port` a sentinel monitoring
    that master as "mymaster"."""

    def __init__(self, *extra: str, sentinel_of: Optional[int] = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="latchkey-py-redis-")
        self.extra = list(extra)
        self.sentinel_of = sentinel_of
        self.proc: Optional[subprocess.Popen[str]] = None
        self.port = 0
        self.output: list[str] = []
        for _ in range(5):
            if self._start():
                return
        self.stop()
        raise RuntimeError("redis-server did not start:\n" + "".join(self.output[-20:]))

    def _command(self) -> tuple[list[str], str]:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if self.sentinel_of is not None:
            conf = Path(self.dir) / "sentinel.conf"
            conf.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor mymaster 127.0.0.1 {self.sentinel_of} 1\n"
            )
            return [binary, str(conf), "--sentinel", "--logfile", ""], "+monitor master"
        return [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
            *self.extra,
        ], READY

    def _start(self) -> bool:
        self.port = free_port()
        self.output = []
        command, marker = self._command()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def drain() -> None:
            # Reads until the server exits, so it never blocks on a full pipe.
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line)
                if marker in line:
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        ready.wait(20)
        if proc.poll() is None and any(marker in line for line in self.output):
            self.proc = proc
            return True
        proc.kill()
        proc.wait()
        return False  # most likely the port was taken meanwhile: try another

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


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
