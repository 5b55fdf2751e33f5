"""Real redis-server processes for a chaos run: each on a free port in its
own directory, started, killed with SIGKILL, restarted (with its data, or
from an older snapshot), and stopped. Readiness is the server's own
"Ready to accept connections" line, not a sleep."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from typing import Optional

import resp

PERSISTENCE = {
    "none": ["--save", "", "--appendonly", "no"],
    "everysec": ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
    "always": ["--save", "", "--appendonly", "yes", "--appendfsync", "always"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port(rng_seed: int) -> int:
    """A free port below 30000 whose cluster bus port (+10000) is free too
    (an ephemeral port's bus port may be taken or above 65535)."""
    rng = random.Random(rng_seed)
    for _ in range(1000):
        port = rng.randrange(20000, 30000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
                return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class Server:
    """One redis-server (or sentinel) process."""

    def __init__(self, name: str, root: str, persistence: str = "none",
                 extra: Optional[list[str]] = None, sentinel_conf: Optional[str] = None,
                 port: Optional[int] = None) -> None:
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.persistence = persistence
        self.extra = extra or []
        self.sentinel_conf = sentinel_conf
        self.port = port or free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        if self.sentinel_conf is not None:
            conf = os.path.join(self.dir, "sentinel.conf")
            if not os.path.exists(conf):
                with open(conf, "w") as f:
                    f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n{self.sentinel_conf}")
            return ["redis-server", conf, "--sentinel"]
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--daemonize", "no", "--enable-debug-command", "yes",
                *PERSISTENCE[self.persistence], *self.extra]

    def start(self, timeout: float = 30.0) -> None:
        log_path = os.path.join(self.dir, f"server-{self.starts}.log")
        self.starts += 1
        log = open(log_path, "wb")
        self.proc = subprocess.Popen(self._argv(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        marker = b"+monitor master" if self.sentinel_conf is not None else b"Ready to accept connections"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(log_path, "rb") as f:
                if marker in f.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not start (see {log_path})")

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self.kill()

    def save_snapshot(self) -> bool:
        """Writes an RDB snapshot now and keeps a copy as the "older
        snapshot" a later restart may come back from."""
        try:
            resp.command(self.port, "SAVE", timeout=10)
        except resp.RedisError:
            return False
        src = os.path.join(self.dir, "dump.rdb")
        if os.path.exists(src):
            shutil.copy(src, os.path.join(self.dir, "older.rdb"))
            os.remove(src)
            return True
        return False

    def restart_from_older_snapshot(self) -> bool:
        """Comes back with the data of the last `save_snapshot` (without
        persistence only: the AOF would win over the snapshot)."""
        older = os.path.join(self.dir, "older.rdb")
        if self.persistence != "none" or not os.path.exists(older):
            return False
        shutil.copy(older, os.path.join(self.dir, "dump.rdb"))
        return True

    def after_restart_cleanup(self) -> None:
        dump = os.path.join(self.dir, "dump.rdb")
        if self.persistence == "none" and os.path.exists(dump):
            os.remove(dump)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
