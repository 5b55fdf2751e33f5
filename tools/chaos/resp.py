"""A minimal Redis client (RESP2 over a socket) for the orchestrator and
the nemesis: enough to send admin commands (CLIENT PAUSE, DEBUG SLEEP,
CONFIG SET, ...) to the servers a run starts, with timeouts."""

from __future__ import annotations

import socket
from typing import Any, Optional


class RedisError(Exception):
    """An error reply, or a server that did not answer."""


def command(port: int, *args: Any, timeout: float = 5.0, host: str = "127.0.0.1") -> Any:
    """Sends one command on a fresh connection and returns the reply."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(encode(args))
            return Reader(sock).reply()
    except OSError as e:
        raise RedisError(f"127.0.0.1:{port}: {e}") from e


def encode(args: tuple[Any, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._more()
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _more(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise RedisError("connection closed")
        self._buf += chunk

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self._buf) < n + 2:
                self._more()
            data, self._buf = self._buf[:n], self._buf[n + 2:]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")


def info_field(port: int, section: str, field: str) -> Optional[str]:
    for line in str(command(port, "INFO", section)).splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None
