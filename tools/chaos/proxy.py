"""A fault-injecting TCP proxy between the workers and one server: it
passes bytes through, or delays them, refuses new connections, blackholes
everything, resets every connection, or lets requests through but holds
the replies (a one-way partition). A connection whose bytes were held back
is closed when the fault heals (its stream lost bytes, so it cannot be
trusted again), which is what a client sees after a real partition."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Optional

from servers import free_port

MODES = ("pass", "delay", "refuse", "blackhole", "one-way")


class Proxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.mode = "pass"
        self.delay = 0.0
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket, list[bool]]] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(256)
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def set(self, mode: str, delay: float = 0.0) -> None:
        assert mode in MODES
        with self._lock:
            self.mode, self.delay = mode, delay

    def heal(self) -> None:
        """Back to passing bytes; closes the connections that lost bytes."""
        with self._lock:
            self.mode, self.delay = "pass", 0.0
            tainted = [p for p in self._pairs if p[2][0]]
            self._pairs = [p for p in self._pairs if not p[2][0]]
        for client, upstream, _ in tainted:
            close(client)
            close(upstream)

    def reset_all(self) -> int:
        """Resets every open connection (RST, not FIN)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream, _ in pairs:
            close(client, reset=True)
            close(upstream, reset=True)
        return len(pairs)

    def stop(self) -> None:
        self._stopped = True
        close(self._listener)
        self.reset_all()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "refuse":
                close(client, reset=True)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                close(client, reset=True)
                continue
            tainted = [self.mode in ("blackhole",)]
            with self._lock:
                self._pairs.append((client, upstream, tainted))
            threading.Thread(target=self._pump, args=(client, upstream, tainted, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, tainted, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, tainted: list[bool],
              request: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(dst)
                close(src)
                with self._lock:
                    self._pairs = [p for p in self._pairs if p[0] is not src and p[1] is not src]
                return
            mode, delay = self.mode, self.delay
            if mode == "blackhole" or (mode == "one-way" and not request):
                tainted[0] = True
                continue  # held back for ever: the stream is broken
            if mode == "delay":
                time.sleep(delay)
            try:
                dst.sendall(data)
            except OSError:
                close(src)
                return


def close(sock: Optional[socket.socket], reset: bool = False) -> None:
    if sock is None:
        return
    # shutdown first: it wakes a thread blocked in recv on this socket
    # (close alone does not); with SO_LINGER 0 the close then sends RST.
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
