"""Redlock over three redis-server processes: acquire and release on a
quorum; NoQuorum once two of the three are down; masters younger than the
ttl grant nothing that counts (the default restart delay)."""

from __future__ import annotations

import pytest

import latchkey
from latchkey import Client

from conftest import RedisServer


def test_redlock_acquire_release_and_no_quorum(masters: list[RedisServer], name: str) -> None:
    # Fresh test servers: no restart to wait out.
    with Client.redlock(
        [m.url for m in masters], connect_timeout=0.5, command_timeout=0.5, restart_delay=0
    ) as client:
        lock = client.lock(name, ttl=5)
        with lock:
            assert lock.owned()
            token = lock.fencing_token
            info = client.inspect(name)
            assert info is not None and info.owner_token == lock.token
            states = client.inspect_masters(name)
            assert len(states) == 3
            assert all(s.holder == lock.token and s.error is None for s in states)
            assert all(s.fencing_token is not None for s in states)
            other = client.lock(name)
            assert other.acquire(blocking=False) is False
        assert not lock.locked()

        masters[0].kill()
        with lock:  # 2 of 3 is a quorum
            assert lock.fencing_token > token
            states = client.inspect_masters(name)
            assert sum(s.error is not None for s in states) == 1

        masters[1].kill()
        with pytest.raises(latchkey.NoQuorum, match="quorum") as raised:
            lock.acquire(timeout=2)
        assert raised.value.status == 9
        assert lock.holds == 0


def test_masters_younger_than_the_ttl_grant_nothing_until_they_ran_a_ttl(
    masters: list[RedisServer], name: str
) -> None:
    urls = [m.url for m in masters]
    with Client.redlock(urls, command_timeout=0.5) as client:
        # The client cannot tell new masters from ones that restarted and
        # lost their locks: not granted, for a ttl far longer than they have
        # run, and the error says why.
        with pytest.raises(latchkey.NoQuorum, match="restart delay"):
            client.lock(name, ttl=3600).acquire(blocking=False)
    with Client.redlock(urls, command_timeout=0.5) as client:
        lock = client.lock(name, ttl=2)
        assert lock.acquire(timeout=60)
        lock.release()


def test_the_restart_delay_is_checked(masters: list[RedisServer]) -> None:
    urls = [m.url for m in masters]
    with pytest.raises(ValueError, match="restart_delay"):
        Client.redlock(urls, restart_delay=-1)
    with Client.redlock(urls, restart_delay=0.5):
        pass
