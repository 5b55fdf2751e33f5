"""The Redis deployments a chaos run puts under the locks, and what the
README claims each survives.

Each deployment knows its servers (those the nemesis may hit), the spec the
workers open their client with, and which faults it cannot survive (for
those only "no silent loss" is claimed, not mutual exclusion)."""

from __future__ import annotations

from typing import Optional

from servers import Server

# Faults after which a deployment may forget locks: the README claims
# mutual exclusion only while Redis keeps its data.
ALWAYS_UNSURVIVABLE = {"server-restart-older-snapshot", "eviction"}


class Deployment:
    name = "base"
    #: What the deployment needs to keep its promises (for RELIABILITY.md).
    assumptions = ""

    def __init__(self, root: str) -> None:
        self.root = root
        self.servers: list[Server] = []

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def spec(self) -> str:
        raise NotImplementedError

    def data_servers(self) -> list[Server]:
        """The servers that hold lock keys (the nemesis targets)."""
        return self.servers

    def unsurvivable(self, kind: str) -> bool:
        return kind in ALWAYS_UNSURVIVABLE

    def lock_key_ports(self) -> list[int]:
        return [s.port for s in self.data_servers() if s.alive()]


class Single(Deployment):
    """One redis-server with the given persistence."""

    def __init__(self, root: str, persistence: str) -> None:
        super().__init__(root)
        self.persistence = persistence
        self.name = f"single-{persistence}"
        self.servers = [Server("lock-server", root, persistence)]
        self.assumptions = {
            "none": "keeps its data: a restart forgets every lock (only no silent loss is claimed then)",
            "everysec": "keeps its data: a restart may lose the last second of writes (only no silent loss is claimed then)",
            "always": "`appendfsync always`: a kill -9 and restart keeps every lock; an older snapshot or eviction does not",
        }[persistence]

    def spec(self) -> str:
        return f"single:{self.servers[0].url}"

    def unsurvivable(self, kind: str) -> bool:
        if kind == "server-restart":
            return self.persistence != "always"
        return super().unsurvivable(kind)


def make(name: str, root: str) -> Optional[Deployment]:
    if name.startswith("single-"):
        return Single(root, name.split("-", 1)[1])
    return None
