#!/usr/bin/env python3
"""One private redis-server (or sentinel) for a test: a free port on
127.0.0.1, its own temporary directory, no persistence unless asked, its log
in DIR/redis.log, ready when the server's own log says so (no sleeps).

Every suite starts its servers through this file: the Rust, C and Go test
fixtures run it, the Python tests import it, tools/redis-fixture.sh (the
demo, the benchmarks, tools/with-redis) calls it.

    redis_fixture.py start [--sentinel] [--sentinel-of PORT [--quorum N]] [--prefix P]
                           [--detach] [-- EXTRA...]
    redis_fixture.py stop DIR|PID

`start` prints one JSON line once the server is ready:
{"port": P, "pid": PID, "dir": "DIR", "url": "redis://127.0.0.1:P"}.
EXTRA are redis-server arguments (`--appendonly yes`), or for a sentinel
configuration lines ("sentinel down-after-milliseconds mymaster 1000"):
--sentinel-of PORT adds "sentinel monitor mymaster 127.0.0.1 PORT QUORUM".

Without --detach the command stays with its server: it reads commands on
stdin, one per line, and answers each with one JSON line (the state above,
with "pid": null while the server is down):
  kill      kill -9 the server and reap it (the directory stays)
  restart   start it again on the same port, directory and arguments
  stop      stop it, remove its directory, exit (end of input does the same)
so a caller that dies, however it dies, takes its server with it; and the
server dies with this command (PR_SET_PDEATHSIG on Linux).
With --detach the server runs on by itself until `stop DIR` (or `stop PID`,
which leaves the directory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import IO, Callable, Optional

READY = "Ready to accept connections"
SENTINEL_READY = "+monitor master"
SENTINEL_STARTED = "Sentinel ID is"
STATE_FILE = "fixture.json"
LOG_FILE = "redis.log"
START_ATTEMPTS = 10
RESTART_ATTEMPTS = 50
READY_TIMEOUT = 20.0


class FixtureError(Exception):
    """The server could not be started or stopped."""


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """$REDIS_SERVER, else redis-server on the PATH."""
    return os.environ.get("REDIS_SERVER") or "redis-server"


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent goes (Linux)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class RedisServer:
    """One redis-server process (or sentinel) in its own directory.

    The process is a child of the caller: `kill`, `restart` and `stop` act
    on it; `stop` also removes the directory.
    """

    def __init__(
        self,
        extra: list[str],
        *,
        sentinel: bool = False,
        sentinel_of: Optional[int] = None,
        quorum: int = 1,
        prefix: str = "latchkey-redis-",
        die_with_parent: bool = False,
        detach: bool = False,
    ) -> None:
        self.extra = list(extra)
        self.sentinel = sentinel or sentinel_of is not None
        self.sentinel_of = sentinel_of
        self.quorum = quorum
        self.die_with_parent = die_with_parent
        self.detach = detach
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.port = 0
        # `--tls-port auto` among the extra arguments (for a sentinel, the
        # configuration line `tls-port auto`): a free port of its own on
        # every attempt, reported as "tls_port".
        self.tls_port = 0
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.log_path = os.path.join(self.dir, LOG_FILE)
        try:
            for _ in range(START_ATTEMPTS):
                self.port = free_port()
                if self._wants_tls_port():
                    self.tls_port = free_port()
                if self._spawn():
                    return
                # Most likely the port was taken meanwhile: try another.
        except BaseException:
            self.stop()
            raise
        tail = self.log_tail()
        self.stop()
        raise FixtureError(
            f"redis-server did not start on any of {START_ATTEMPTS} free ports; "
            f"its last lines:\n{tail}"
        )

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT"""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        """The server's pid, or None while it is down."""
        return self.proc.pid if self.proc is not None else None

    def state(self) -> dict[str, object]:
        """What `start` prints."""
        state: dict[str, object] = {
            "port": self.port,
            "pid": self.pid,
            "dir": self.dir,
            "url": self.url,
        }
        if self.tls_port:
            state["tls_port"] = self.tls_port
        return state

    def _wants_tls_port(self) -> bool:
        pairs = zip(self.extra, self.extra[1:])
        return "tls-port auto" in self.extra or ("--tls-port", "auto") in pairs

    def _extra_arguments(self) -> list[str]:
        """The extra arguments (or configuration lines), `auto` TLS port
        given its number."""
        out = list(self.extra)
        for i, item in enumerate(out):
            if item == "tls-port auto":
                out[i] = f"tls-port {self.tls_port}"
            elif item == "auto" and i > 0 and out[i - 1] == "--tls-port":
                out[i] = str(self.tls_port)
        return out

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _command(self) -> tuple[list[str], str]:
        binary = redis_server_binary()
        if not self.sentinel:
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
                *self._extra_arguments(),
            ], READY
        lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}"]
        if self.sentinel_of is not None:
            lines.append(f"sentinel monitor mymaster 127.0.0.1 {self.sentinel_of} {self.quorum}")
        lines += self._extra_arguments()
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        monitors = any(line.startswith("sentinel monitor ") for line in lines)
        return [binary, conf, "--sentinel", "--logfile", ""], (
            SENTINEL_READY if monitors else SENTINEL_STARTED
        )

    def _spawn(self) -> bool:
        """Starts the process on self.port; True once it is ready."""
        command, marker = self._command()
        preexec: Optional[Callable[[], None]] = None
        if self.die_with_parent and sys.platform.startswith("linux"):
            preexec = _die_with_parent
        with open(self.log_path, "ab") as log:
            offset = log.tell()
            try:
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=preexec,
                    start_new_session=self.detach,
                )
            except FileNotFoundError as e:
                raise FixtureError(
                    f"cannot run redis-server ({e}); install it (`make test` does: "
                    "apt-get install -y redis-server) or set REDIS_SERVER"
                ) from e
        if _wait_for_line(self.log_path, offset, marker, proc, READY_TIMEOUT):
            self.proc = proc
            self._write_state()
            return True
        proc.kill()
        proc.wait()
        return False

    def _write_state(self) -> None:
        with open(os.path.join(self.dir, STATE_FILE), "w", encoding="utf-8") as f:
            json.dump(self.state(), f)

    def kill(self) -> None:
        """kill -9 and reap; the directory stays."""
        if self.proc is not None:
            _kill_and_reap(self.proc)
            self.proc = None

    def restart(self) -> None:
        """Kills the server and starts a fresh one on the same port, in the
        same directory with the same arguments."""
        self.kill()
        for _ in range(RESTART_ATTEMPTS):
            if self._spawn():
                return
            # The old socket may linger for a moment; wait for the port.
            time.sleep(0.1)
        raise FixtureError(f"redis-server did not restart on port {self.port}")

    def stop(self) -> None:
        """Kills the server and removes its directory. Safe to call twice."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _kill_and_reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGCONT)  # a stopped server
            proc.kill()
        except ProcessLookupError:
            pass
    proc.wait()


def _wait_for_line(
    path: str, offset: int, marker: str, proc: subprocess.Popen[bytes], timeout: float
) -> bool:
    """Reads the log from `offset` as it grows until a line has `marker`
    (True), the process exits or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    pending = b""
    needle = marker.encode()
    with open(path, "rb") as log:
        log.seek(offset)
        while True:
            chunk = log.read()
            if chunk:
                pending += chunk
                if needle in pending:
                    return True
                pending = pending[pending.rfind(b"\n") + 1 :]
                continue
            if proc.poll() is not None:
                chunk = log.read()
                return needle in pending + chunk
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stop_detached(target: str) -> None:
    """`stop DIR`: kills the server named in DIR and removes DIR;
    `stop PID`: kills that process. Returns once it is gone."""
    pid: Optional[int] = None
    directory: Optional[str] = None
    if target.isdigit():
        pid = int(target)
    else:
        directory = target
        try:
            with open(os.path.join(target, STATE_FILE), encoding="utf-8") as f:
                value = json.load(f).get("pid")
            pid = value if isinstance(value, int) else None
        except (OSError, ValueError):
            pid = None
    if pid is not None and pid > 0:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
        while not _pid_gone(pid):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                time.sleep(0.005)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _say(out: IO[str], state: dict[str, object]) -> None:
    out.write(json.dumps(state, ensure_ascii=False) + "\n")
    out.flush()


def _serve(server: RedisServer) -> int:
    """Answers commands on stdin until `stop` or end of input."""
    # The caller going away is the end of input, never a signal here.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "stop":
                break
            try:
                if command == "kill":
                    server.kill()
                elif command == "restart":
                    server.restart()
                elif command:
                    _say(sys.stdout, {"error": f"unknown command {command!r}"})
                    continue
                else:
                    continue
                _say(sys.stdout, server.state())
            except FixtureError as e:
                _say(sys.stdout, {"error": str(e)})
    except OSError:
        pass
    finally:
        server.stop()
    try:
        _say(sys.stdout, {"stopped": True})
    except OSError:
        pass
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """The command line (see the module's help)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a server and print where it is")
    start.add_argument(
        "--sentinel", action="store_true", help="a sentinel; EXTRA are its configuration lines"
    )
    start.add_argument("--sentinel-of", type=int, metavar="PORT", help="a sentinel of this master")
    start.add_argument("--quorum", type=int, default=1, help="the sentinel's quorum (1)")
    start.add_argument("--prefix", default="latchkey-redis-", help="the temp directory's prefix")
    start.add_argument("--detach", action="store_true", help="print and exit; the server runs on")
    start.add_argument("extra", nargs="*", help="redis-server arguments (after --)")
    stop = commands.add_parser("stop", help="stop a detached server")
    stop.add_argument("target", metavar="DIR|PID")
    args = parser.parse_args(argv)

    if args.command == "stop":
        stop_detached(args.target)
        return 0
    try:
        server = RedisServer(
            args.extra,
            sentinel=args.sentinel,
            sentinel_of=args.sentinel_of,
            quorum=args.quorum,
            prefix=args.prefix,
            die_with_parent=not args.detach,
            detach=args.detach,
        )
    except FixtureError as e:
        print(f"redis_fixture: {e}", file=sys.stderr)
        return 1
    try:
        _say(sys.stdout, server.state())
    except OSError:
        server.stop()
        return 1
    if args.detach:
        return 0
    return _serve(server)


if __name__ == "__main__":
    sys.exit(main())
