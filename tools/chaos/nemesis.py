"""The nemesis: injects real faults at random (from a seeded generator, so
a seed replays the same schedule), each logged with its start and end on
CLOCK_MONOTONIC, the clock the workers' histories use."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from typing import Any, Optional

import resp
from deployments import Deployment
from servers import Server

# Every fault kind the nemesis knows; a profile picks from them.
WORKER_FAULTS = ["worker-kill", "worker-stop"]
SERVER_FAULTS = ["server-restart", "server-restart-older-snapshot", "client-pause",
                 "debug-sleep", "client-kill", "script-flush", "eviction"]
# Sentinel and Cluster only.
FAILOVER = ["failover"]
# Where the deployment has proxies (one server, Redlock).
PROXY_FAULTS = ["proxy-delay", "proxy-refuse", "proxy-blackhole", "proxy-reset", "proxy-one-way"]


class Nemesis:
    def __init__(self, rng: random.Random, deployment: Deployment, workers: Any,
                 log_path: str, kinds: list[str], ttl_ms: int, command_timeout_ms: int,
                 gap: tuple[float, float] = (0.3, 1.5)) -> None:
        self.rng = rng
        self.deployment = deployment
        self.workers = workers
        self.log = open(log_path, "w")
        # An older snapshot can only come back where no AOF overrides it.
        self.kinds = [k for k in kinds if k != "server-restart-older-snapshot"
                      or all(s.persistence == "none" for s in deployment.data_servers())]
        if not deployment.proxied:
            self.kinds = [k for k in self.kinds if not k.startswith("proxy-")]
        if not hasattr(deployment, "failover"):
            self.kinds = [k for k in self.kinds if k != "failover"]
        self.ttl = ttl_ms / 1000
        self.command_timeout = command_timeout_ms / 1000
        self.gap = gap
        self.counts: dict[str, int] = {}

    def record(self, kind: str, start: int, end: int, **params: Any) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        entry = {"kind": kind, "start": start, "end": end, "wall": time.time_ns(),
                 "unsurvivable": self.deployment.unsurvivable(kind), **params}
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()

    def run(self, until_ns: int) -> None:
        """Injects faults one after another until `until_ns`, then heals."""
        for server in self.deployment.data_servers():
            if server.persistence == "none":
                server.save_snapshot()
        while time.monotonic_ns() < until_ns:
            if not self.kinds:
                self.pause((until_ns - time.monotonic_ns()) / 1e9, until_ns)
                break
            kind = self.rng.choice(self.kinds)
            start = time.monotonic_ns()
            params = self.inject(kind)
            if params is not None:
                self.record(kind, start, time.monotonic_ns(), **params)
            self.pause(self.rng.uniform(*self.gap), until_ns)
        self.heal()

    def longest_fault_s(self) -> float:
        """The longest a fault this nemesis injects keeps a master away: a
        pause or sleep (up to twice the larger of the ttl and the command
        timeout), a restart (up to 1 s down). A failover keeps the old master
        until the new one is promoted."""
        return 2.0 * max(self.ttl, self.command_timeout) + 1.0

    def pause(self, seconds: float, until_ns: int) -> None:
        remaining = (until_ns - time.monotonic_ns()) / 1e9
        time.sleep(max(0.0, min(seconds, remaining)))

    def heal(self) -> None:
        for server in self.deployment.data_servers():
            if not server.alive():
                self.deployment.before_start(server)
                server.start()
            try:
                resp.command(server.port, "CONFIG", "SET", "maxmemory", "0")
            except resp.RedisError:
                pass
        for proxy in self.deployment.all_proxies():
            proxy.heal()
        self.workers.continue_all()

    def server(self) -> Server:
        return self.rng.choice(self.deployment.data_servers())

    def inject(self, kind: str) -> Optional[dict[str, Any]]:
        if kind.startswith("proxy-"):
            return self._proxy_fault(kind)
        if kind == "failover":
            failover = getattr(self.deployment, "failover", None)
            return failover() if failover else None
        ttl, timeout = self.ttl, self.command_timeout
        if kind == "worker-kill":
            victim = self.workers.pick(self.rng)
            if victim is None:
                return None
            self.workers.signal(victim, signal.SIGKILL)
            replacement = self.workers.replace(victim)
            return {"target": victim, "replacement": replacement}
        if kind == "worker-stop":
            victim = self.workers.pick(self.rng, holding=True)
            if victim is None:
                return None
            seconds = self.rng.uniform(1.5 * ttl, 2.5 * ttl)
            self.workers.signal(victim, signal.SIGSTOP)
            time.sleep(seconds)
            self.workers.signal(victim, signal.SIGCONT)
            return {"target": victim, "seconds": round(seconds, 3)}
        server = self.server()
        if kind == "server-restart":
            down = self.rng.uniform(0.1, 1.0)
            server.kill()
            time.sleep(down)
            self.deployment.before_start(server)
            server.start()
            return {"target": server.name, "persistence": server.persistence, "down": round(down, 3)}
        if kind == "server-restart-older-snapshot":
            server.kill()
            self.deployment.before_start(server)
            if not server.restart_from_older_snapshot():
                server.start()
                return {"target": server.name, "snapshot": False}
            server.start()
            server.after_restart_cleanup()
            return {"target": server.name, "snapshot": True}
        # Pauses outlast the command timeout and often the lease.
        pause = max(ttl, timeout)
        if kind == "client-pause":
            ms = int(self.rng.uniform(0.8, 2.0) * pause * 1000)
            resp.command(server.port, "CLIENT", "PAUSE", ms, "ALL")
            time.sleep(ms / 1000)
            return {"target": server.name, "ms": ms}
        if kind == "debug-sleep":
            seconds = round(self.rng.uniform(0.8, 2.0) * pause, 2)
            thread = threading.Thread(target=self._debug_sleep, args=(server.port, seconds))
            thread.start()
            thread.join()
            return {"target": server.name, "seconds": seconds}
        if kind == "client-kill":
            killed = 0
            for client_type in ("normal", "pubsub"):
                try:
                    killed += int(resp.command(server.port, "CLIENT", "KILL", "TYPE", client_type,
                                               "SKIPME", "yes"))
                except resp.RedisError:
                    pass
            return {"target": server.name, "killed": killed}
        if kind == "script-flush":
            resp.command(server.port, "SCRIPT", "FLUSH")
            return {"target": server.name}
        if kind == "eviction":
            return self._eviction(server)
        raise ValueError(f"unknown fault kind {kind}")

    def _proxy_fault(self, kind: str) -> Optional[dict[str, Any]]:
        """A network fault between one worker (a holder, preferably) and the
        servers: all of them, or one (Redlock: one master)."""
        victim = self.workers.pick(self.rng, holding=True)
        if victim is None:
            return None
        proxies = self.deployment.proxies_for(victim)
        if len(proxies) > 1 and self.rng.random() < 0.5:
            proxies = [self.rng.choice(proxies)]
        params: dict[str, Any] = {"target": victim, "servers": len(proxies)}
        if kind == "proxy-reset":
            params["connections"] = sum(p.reset_all() for p in proxies)
            return params
        seconds = self.rng.uniform(0.8, 2.0) * max(self.ttl, self.command_timeout)
        params["seconds"] = round(seconds, 3)
        if kind == "proxy-delay":
            params["delay"] = round(self.rng.uniform(0.02, 0.3), 3)
        for proxy in proxies:
            if kind == "proxy-delay":
                proxy.set("delay", params["delay"])
            else:
                proxy.set({"proxy-refuse": "refuse", "proxy-blackhole": "blackhole",
                           "proxy-one-way": "one-way"}[kind])
        time.sleep(seconds)
        for proxy in proxies:
            proxy.heal()
        return params

    def _debug_sleep(self, port: int, seconds: float) -> None:
        try:
            resp.command(port, "DEBUG", "SLEEP", seconds, timeout=seconds + 10)
        except resp.RedisError:
            pass

    def _eviction(self, server: Server) -> dict[str, Any]:
        """maxmemory just above what is in use, random eviction, and filler
        writes: lock keys and fencing counters get evicted."""
        used = int(resp.info_field(server.port, "memory", "used_memory") or 0)
        resp.command(server.port, "CONFIG", "SET", "maxmemory-policy", "allkeys-random")
        resp.command(server.port, "CONFIG", "SET", "maxmemory", used + 64 * 1024)
        filler = "x" * 4096
        for i in range(64):
            try:
                resp.command(server.port, "SET", f"chaos-filler-{i}", filler)
            except resp.RedisError:
                break
        seconds = self.rng.uniform(0.5, 1.5)
        time.sleep(seconds)
        resp.command(server.port, "CONFIG", "SET", "maxmemory", "0")
        try:
            resp.command(server.port, "DEL", *[f"chaos-filler-{i}" for i in range(64)])
        except resp.RedisError:
            pass
        return {"target": server.name, "seconds": round(seconds, 3)}
