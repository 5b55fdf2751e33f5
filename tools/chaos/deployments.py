"""The Redis deployments a chaos run puts under the locks, and what the
README claims each survives.

Each deployment knows its servers (those the nemesis may hit), the spec the
workers open their client with, and which faults it cannot survive (for
those only "no silent loss" is claimed, not mutual exclusion)."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any, Callable, Optional

import resp
from proxy import Proxy
from servers import Server, free_cluster_port

# Faults after which a deployment may forget locks: the README claims
# mutual exclusion only while Redis keeps its data.
ALWAYS_UNSURVIVABLE = {"server-restart-older-snapshot", "eviction"}


class Deployment:
    name = "base"
    #: Whether a release hands the lock to a woken waiter (README: "Fair
    #: handoff"); the checker counts slow handoffs as violations only then.
    fair_handoff = True
    #: What the deployment needs to keep its promises (for RELIABILITY.md).
    assumptions = ""

    def __init__(self, root: str) -> None:
        self.root = root
        self.servers: list[Server] = []
        #: Whether workers reach the data servers through fault-injecting
        #: proxies, one per worker and server (not where the clients are
        #: redirected to the servers' own addresses, as with Sentinel and
        #: Cluster).
        self.proxied = False
        self.proxies: dict[str, list[Proxy]] = {}

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def proxies_for(self, worker_id: str) -> list[Proxy]:
        """The worker's own proxies, one per data server: a fault on them
        cuts that worker off, as a network partition would."""
        if worker_id not in self.proxies:
            self.proxies[worker_id] = [Proxy(s.port) for s in self.data_servers()]
        return self.proxies[worker_id]

    def all_proxies(self) -> list[Proxy]:
        return [p for group in self.proxies.values() for p in group]

    def stop(self) -> None:
        for proxy in self.all_proxies():
            proxy.stop()
        for server in self.servers:
            server.stop()

    def spec(self, worker_id: str) -> str:
        raise NotImplementedError

    def data_servers(self) -> list[Server]:
        """The servers that hold lock keys (the nemesis targets)."""
        return self.servers

    def unsurvivable(self, kind: str) -> bool:
        return kind in ALWAYS_UNSURVIVABLE

    def lock_key_ports(self) -> list[int]:
        return [s.port for s in self.data_servers() if s.alive()]

    #: How long a master may take to come back after the nemesis's faults
    #: beyond their own length (a restart, a failover); see failover_bound_s.
    recovery_s = 10.0

    def failover_bound_s(self, longest_fault_s: float) -> float:
        """How long the deployment may be without a master that takes
        writes: the longest fault the nemesis injects plus the time to
        recover from it. Longer is the fixture's fault (fixture_faults in
        the checker), whatever the library did."""
        return longest_fault_s + self.recovery_s

    def has_master(self) -> bool:
        """Whether a master answers now (every data server, by default)."""
        return all(answers(s) for s in self.data_servers())

    def before_start(self, server: Server) -> None:
        """Called before the nemesis (re)starts a data server."""


class Single(Deployment):
    """One redis-server with the given persistence."""

    def __init__(self, root: str, persistence: str) -> None:
        super().__init__(root)
        self.persistence = persistence
        self.name = f"single-{persistence}"
        self.servers = [Server("lock-server", root, persistence)]
        self.proxied = True
        self.assumptions = {
            "none": "keeps its data: a restart forgets every lock (only no silent loss is claimed then)",
            "everysec": "keeps its data: a restart may lose the last second of writes (only no silent loss is claimed then)",
            "always": "`appendfsync always`: a kill -9 and restart keeps every lock; an older snapshot or eviction does not",
        }[persistence]

    def spec(self, worker_id: str) -> str:
        return f"single:{self.proxies_for(worker_id)[0].url}"

    def unsurvivable(self, kind: str) -> bool:
        if kind == "server-restart":
            return self.persistence != "always"
        return super().unsurvivable(kind)


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Waits until `condition` holds (polling a server's own state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except resp.RedisError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting until {what}")


def answers(server: Server) -> bool:
    try:
        return bool(server.alive() and resp.command(server.port, "PING", timeout=1.0) == "PONG")
    except resp.RedisError:
        return False


def role(port: int) -> Optional[str]:
    try:
        return resp.info_field(port, "replication", "role")
    except resp.RedisError:
        return None


def in_sync(replica: Server) -> Callable[[], bool]:
    return lambda: resp.info_field(replica.port, "replication", "master_link_status") == "up"


def sees_replicas(sentinel: Server, count: int) -> Callable[[], bool]:
    return lambda: len(resp.command(sentinel.port, "SENTINEL", "REPLICAS", "mymaster")) == count


def cluster_ok(node: Server) -> Callable[[], bool]:
    return lambda: "cluster_state:ok" in str(resp.command(node.port, "CLUSTER", "INFO"))


class Redlock(Deployment):
    """Five independent masters without persistence."""

    name = "redlock"
    assumptions = ("a majority of the 5 masters is reachable; clocks drift less than 1 % + 2 ms "
                   "of the ttl; a master restarted without persistence counts toward no quorum "
                   "for a ttl (the client's delayed restart), so restarts are survived; a master "
                   "restored from an older snapshot may hand a lock out again (only no silent "
                   "loss is claimed then)")

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.servers = [Server(f"master-{i}", root) for i in range(5)]
        self.proxied = True

    def spec(self, worker_id: str) -> str:
        return "redlock:" + ",".join(p.url for p in self.proxies_for(worker_id))

    def has_master(self) -> bool:
        """A majority of the masters answers."""
        return sum(answers(s) for s in self.servers) > len(self.servers) // 2


class Sentinel(Deployment):
    """One master, two replicas, three sentinels (quorum 2)."""

    name = "sentinel"
    assumptions = ("the master keeps its data; a failover may promote a replica that missed the "
                   "latest lock writes (replication is asynchronous), so after a failover or a "
                   "restart only no silent loss is claimed")

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.master = Server("master", root)
        self.replicas = [Server(f"replica-{i}", root, extra=["--replicaof", "127.0.0.1",
                                                            str(self.master.port)])
                         for i in range(2)]
        conf = (f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 2\n"
                "sentinel down-after-milliseconds mymaster 5000\n"
                "sentinel failover-timeout mymaster 10000\n")
        self.sentinels = [Server(f"sentinel-{i}", root, sentinel_conf=conf) for i in range(3)]
        self.servers = [self.master, *self.replicas, *self.sentinels]

    def start(self) -> None:
        self.master.start()
        for replica in self.replicas:
            replica.start()
        for replica in self.replicas:
            wait_for("a replica is in sync", in_sync(replica))
        for sentinel in self.sentinels:
            sentinel.start()
        for sentinel in self.sentinels:
            wait_for("a sentinel sees both replicas", sees_replicas(sentinel, 2))

    def spec(self, worker_id: str) -> str:
        return "sentinel:mymaster:" + ",".join(s.url for s in self.sentinels)

    def data_servers(self) -> list[Server]:
        return [self.master, *self.replicas]

    def unsurvivable(self, kind: str) -> bool:
        return kind in ("server-restart", "failover") or super().unsurvivable(kind)

    # A dead master is noticed after down-after-milliseconds (5 s), then a
    # replica is elected and promoted.
    recovery_s = 15.0

    def current_master_port(self) -> Optional[int]:
        """The master's port as the sentinels name it now (None if none
        answers)."""
        for sentinel in self.sentinels:
            try:
                addr = resp.command(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster",
                                    timeout=1.0)
            except resp.RedisError:
                continue
            if addr:
                return int(addr[1])
        return None

    def has_master(self) -> bool:
        """The server the sentinels name is a master (a replica answers
        writes with READONLY)."""
        port = self.current_master_port()
        return port is not None and role(port) == "master"

    def before_start(self, server: Server) -> None:
        """A data server comes back as what it is now: the master if the
        sentinels still name it, else a replica of the master they name.
        (With its original --replicaof, a promoted replica came back as the
        replica of a replica: no master for ~36 s, until the sentinels
        failed over again.)"""
        port = self.current_master_port()
        if port is None:
            return
        server.extra = [] if port == server.port else ["--replicaof", "127.0.0.1", str(port)]

    def failover(self) -> Optional[dict[str, Any]]:
        sentinel = self.sentinels[0]
        before = resp.command(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
        # A sentinel promotes only a replica it heard from recently, in its
        # own (lagging) view: NOGOODSLAVE and INPROG are asked again.
        asked = time.monotonic()
        while True:
            try:
                resp.command(sentinel.port, "SENTINEL", "FAILOVER", "mymaster")
                break
            except resp.RedisError as e:
                if not str(e).startswith(("NOGOODSLAVE", "INPROG")) or time.monotonic() - asked > 30:
                    return {"target": "mymaster", "refused": str(e)}
                time.sleep(0.1)
        try:
            wait_for("the sentinels name a new master", lambda: resp.command(
                sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster") != before, 20)
        except RuntimeError:
            return {"target": "mymaster", "completed": False}
        after = resp.command(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
        # The fault lasts until the old master is a replica: until then it
        # still takes writes from clients that knew it (two masters at once).
        demoted = True
        try:
            wait_for("the old master is demoted", lambda: resp.info_field(
                int(before[1]), "replication", "role") == "slave", 30)
        except RuntimeError:
            demoted = False
        return {"target": "mymaster", "from": before[1], "to": after[1], "old_master_demoted": demoted}


class Cluster(Deployment):
    """Six nodes: three masters, three replicas (redis-cli --cluster create)."""

    name = "cluster"
    assumptions = ("a master keeps its data until its replica takes over; a manual failover "
                   "(CLUSTER FAILOVER) loses nothing; a master lost without persistence may "
                   "hand a lock out again (only no silent loss is claimed then)")

    def __init__(self, root: str) -> None:
        super().__init__(root)
        ports: list[int] = []
        while len(ports) < 6:
            port = free_cluster_port(os.getpid() * 31 + len(ports) * 7919 + int(time.time_ns() % 100000))
            if port not in ports:
                ports.append(port)
        self.servers = [Server(f"node-{i}", root, port=ports[i], extra=[
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "5000"]) for i in range(6)]

    def start(self) -> None:
        super().start()
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{s.port}" for s in self.servers],
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for server in self.servers:
            wait_for("the cluster is up", cluster_ok(server))

    def spec(self, worker_id: str) -> str:
        return "cluster:" + ",".join(s.url for s in self.servers)

    # A dead master is noticed after cluster-node-timeout (5 s), then its
    # replica is elected.
    recovery_s = 15.0

    def has_master(self) -> bool:
        """Some node answering says the cluster is ok (every slot served)."""
        for server in self.servers:
            if server.alive():
                try:
                    return "cluster_state:ok" in str(resp.command(server.port, "CLUSTER", "INFO",
                                                                  timeout=1.0))
                except resp.RedisError:
                    continue
        return False

    def unsurvivable(self, kind: str) -> bool:
        return kind == "server-restart" or super().unsurvivable(kind)

    def failover(self) -> Optional[dict[str, Any]]:
        replicas = [s for s in self.servers if s.alive()
                    and resp.info_field(s.port, "replication", "role") == "slave"]
        if not replicas:
            return None
        replica = replicas[0]
        resp.command(replica.port, "CLUSTER", "FAILOVER")
        try:
            wait_for("the replica becomes a master", lambda: resp.info_field(
                replica.port, "replication", "role") == "master", 20)
        except RuntimeError:
            return {"target": replica.name, "completed": False}
        return {"target": replica.name}


def make(name: str, root: str) -> Optional[Deployment]:
    if name.startswith("single-"):
        return Single(root, name.split("-", 1)[1])
    return {"redlock": Redlock, "sentinel": Sentinel, "cluster": Cluster}.get(
        name, lambda root: None)(root)
