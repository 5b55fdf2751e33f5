"""TLS from Python (the ``tls_*`` keyword arguments of every Client
constructor) against redis-servers started with a TLS port and
certificates made for the test by tools/tls_certs.py: the cases of
tests/tls.rs, the C and the Go tests. A good chain with a hand-off between
two clients (the waiter is woken by the release on its own TLS listener),
the wrong CA, the wrong name, mutual TLS, the insecure switch, options that
cannot work, and an AsyncLock over TLS. Waiters are waited for by asking
the server until they subscribed, never by sleeping a fixed time."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import tls_certs

from latchkey import Client, ConnectionFailed, InvalidArgument

from conftest import RedisServer


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The test certificates, by file name (see tools/tls_certs.py)."""
    return tls_certs.make(str(tmp_path_factory.mktemp("tls-certs")))


def _tls_server(certs: dict[str, str], auth_clients: str) -> RedisServer:
    server = RedisServer(
        "--tls-port",
        "auto",
        "--tls-cert-file",
        certs["server.crt"],
        "--tls-key-file",
        certs["server.key"],
        "--tls-ca-cert-file",
        certs["ca.crt"],
        "--tls-auth-clients",
        auth_clients,
    )
    assert server.tls_port, "the fixture reports the TLS port"
    return server


@pytest.fixture(scope="module")
def server(certs: dict[str, str]) -> Iterator[RedisServer]:
    """A server with a TLS port that asks no client certificate."""
    s = _tls_server(certs, "no")
    yield s
    s.stop()


def tls_url(server: RedisServer, host: str) -> str:
    return f"rediss://{host}:{server.tls_port}"


def quick(url: str, **options: Any) -> Client:
    return Client(url, connect_timeout=5, command_timeout=5, **options)


def subscribers(server: RedisServer, name: str) -> int:
    """Connections listening on the release channel of ``name`` (asked on
    the server's plain port): a waiting acquire subscribes before it parks."""
    out = subprocess.run(
        ["redis-cli", "-p", str(server.port), "PUBSUB", "NUMSUB", f"latchkey:{{{name}}}:ch"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[1])


def wait_for_waiter(server: RedisServer, name: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while subscribers(server, name) == 0:
        assert time.monotonic() < deadline, "the waiter never subscribed"
        time.sleep(0.01)


def test_locks_are_taken_handed_over_and_released_over_tls(
    certs: dict[str, str], server: RedisServer, name: str
) -> None:
    holder = quick(tls_url(server, "localhost"), tls_ca_file=certs["ca.crt"])
    waiter = quick(tls_url(server, "127.0.0.1"), tls_ca_file=Path(certs["ca.crt"]))
    with holder, waiter:
        lock = holder.lock(name, ttl=5)
        assert lock.acquire()
        first_token = lock.fencing_token
        other = waiter.lock(name, ttl=5)
        tokens: list[int] = []

        def wait() -> None:
            if other.acquire(timeout=30):
                tokens.append(other.fencing_token)
                other.release()

        thread = threading.Thread(target=wait)
        thread.start()
        try:
            wait_for_waiter(server, name)
            lock.check()
            lock.release()
        finally:
            thread.join(60)
        # The waiter, on the other client, was woken by the release on its
        # own TLS listener.
        assert tokens and tokens[0] > first_token
        assert not holder.is_locked(name)


def test_an_async_lock_is_acquired_over_tls(
    certs: dict[str, str], server: RedisServer, name: str
) -> None:
    async def main() -> int:
        with quick(tls_url(server, "localhost"), tls_ca_file=certs["ca.crt"]) as client:
            async with client.async_lock(name, ttl=5) as lock:
                assert await lock.owned()
                return lock.fencing_token

    assert asyncio.run(main()) > 0


def test_a_server_signed_by_another_ca_is_refused_naming_the_cause(
    certs: dict[str, str], server: RedisServer
) -> None:
    with quick(tls_url(server, "localhost"), tls_ca_file=certs["other-ca.crt"]) as client:
        with pytest.raises(ConnectionFailed) as refused:
            client.lock("x").acquire(blocking=False)
    text = str(refused.value)
    assert "not signed by a CA this client trusts" in text and "tls_ca_file" in text, text


def test_the_certificate_must_name_the_server_or_the_name_given(
    certs: dict[str, str], server: RedisServer
) -> None:
    url = tls_url(server, "127.0.0.1")
    with quick(url, tls_ca_file=certs["ca.crt"], tls_server_name="redis.elsewhere.test") as c:
        with pytest.raises(ConnectionFailed, match="not valid for the host name"):
            c.is_locked("x")
    with quick(url, tls_ca_file=certs["ca.crt"], tls_server_name="localhost") as c:
        assert not c.is_locked("x")


def test_mutual_tls_needs_the_client_certificate(certs: dict[str, str], name: str) -> None:
    server = _tls_server(certs, "yes")
    try:
        url = tls_url(server, "localhost")
        with quick(url, tls_ca_file=certs["ca.crt"]) as without:
            with pytest.raises(ConnectionFailed):
                without.is_locked("x")
        client_cert = (certs["client.crt"], Path(certs["client.key"]))
        with quick(url, tls_ca_file=certs["ca.crt"], tls_client_cert=client_cert) as with_cert:
            with with_cert.lock(name) as lock:
                assert lock.owned()
    finally:
        server.stop()


def test_skipping_verification_accepts_any_certificate(server: RedisServer) -> None:
    url = tls_url(server, "127.0.0.1")
    with quick(url, tls_server_name="redis.elsewhere.test", tls_insecure_skip_verify=True) as c:
        assert not c.is_locked("x")


def test_bad_tls_options_fail_the_client_and_name_what_is_wrong(
    certs: dict[str, str], url: str
) -> None:
    tls = "rediss://localhost:6380"
    cases: list[tuple[str, dict[str, Any], str]] = [
        (url, {"tls_ca_file": certs["ca.crt"]}, "no URL is rediss://"),
        (url, {"tls_insecure_skip_verify": True}, "no URL is rediss://"),
        (tls, {"tls_ca_file": "/no/such/ca.pem"}, "/no/such/ca.pem"),
        (tls, {"tls_ca_file": certs["client.key"]}, "no PEM certificate"),
        (
            tls,
            {
                "tls_ca_file": certs["ca.crt"],
                "tls_client_cert": (certs["client.crt"], certs["server.key"]),
            },
            "do not go together",
        ),
        (
            tls,
            {"tls_ca_file": certs["ca.crt"], "tls_server_name": "not a name"},
            "not a valid TLS server name",
        ),
    ]
    for where, options, needle in cases:
        with pytest.raises(InvalidArgument) as refused:
            Client(where, **options)
        assert needle in str(refused.value), (options, str(refused.value))
    # Every constructor takes them, and passes them on.
    other = ["redis://127.0.0.1:2", "redis://127.0.0.1:3"]
    with pytest.raises(InvalidArgument, match="no URL is rediss://"):
        Client.redlock([url, *other], tls_ca_file=certs["ca.crt"])
    with pytest.raises(InvalidArgument, match="no URL is rediss://"):
        Client.cluster([url], tls_server_name="localhost")
    with pytest.raises(InvalidArgument, match="no URL is rediss://"):
        Client.sentinel([url], "m", tls_client_cert=(certs["client.crt"], certs["client.key"]))
    with pytest.raises(InvalidArgument, match="rediss:// or none"):
        Client.sentinel(["rediss://localhost:26379", "redis://localhost:26380"], "m")


def test_tls_arguments_python_can_check_never_reach_c(certs: dict[str, str]) -> None:
    tls = "rediss://localhost:6380"
    with pytest.raises(TypeError, match="tls_ca_file"):
        Client(tls, tls_ca_file=certs["ca.crt"].encode())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tls_ca_file"):
        Client(tls, tls_ca_file="ca\0.crt")
    with pytest.raises(TypeError, match="tls_client_cert"):
        Client(tls, tls_client_cert=certs["client.crt"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tls_client_cert"):
        Client(tls, tls_client_cert=[certs["client.crt"], certs["client.key"]])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tls_server_name"):
        Client(tls, tls_server_name=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tls_insecure_skip_verify"):
        Client(tls, tls_insecure_skip_verify="yes")  # type: ignore[arg-type]
