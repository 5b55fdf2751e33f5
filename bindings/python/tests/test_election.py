"""Leader election from Python: one leader at a time across threads with
increasing terms, the leader and its value read back, a campaign that
times out, an observer woken by a resignation and by the next leader, a
leader killed with SIGKILL replaced once its lease ends, a leadership
whose key is deleted reported lost, bad input refused, cancellation,
garbage collection and close, asyncio, and the Redis keys the library
(Rust, C, Go) uses."""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Optional

import pytest

import latchkey
from latchkey import Cancel, Client, Election, Leader, Leadership, LostLease


def redis_cli(url: str, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-u", url, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_one_leader_at_a_time_with_increasing_terms(url: str, name: str) -> None:
    counter = threading.Lock()
    leading = [0]
    terms: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def candidate(i: int) -> None:
        try:
            with Client(url) as client:
                election = client.election(name)
                start.wait()
                for _ in range(10):
                    with election.campaign(f"node-{i}", timeout=30) as leadership:
                        leadership.check()
                        with counter:
                            leading[0] += 1
                            assert leading[0] == 1, "two leaders at once"
                            terms.append(leadership.term)
                        leader = election.leader()
                        assert leader == Leader(leadership.term, f"node-{i}".encode())
                        with counter:
                            leading[0] -= 1
                        leadership.check()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=candidate, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(terms) == 40
    assert terms == sorted(terms) and len(set(terms)) == 40, "terms did not increase"


def test_the_leader_and_its_value_and_a_campaign_timeout(client: Client, name: str) -> None:
    election = client.election(name)
    assert election.name == name and election.leader() is None
    leadership = election.campaign(b"10.0.0.1:80")
    assert isinstance(leadership, Leadership)
    assert leadership.value == b"10.0.0.1:80" and leadership.name == name
    assert leadership.term == leadership.fencing_token > 0
    assert len(leadership.token) == 32 and leadership.remaining > 0
    assert not leadership.lost and leadership.owned()
    leadership.extend(60)
    assert election.leader() == Leader(leadership.term, b"10.0.0.1:80")
    assert election.holds == 1
    other = client.election(name)
    with pytest.raises(latchkey.LockTimeout):
        other.campaign(b"x", timeout=0)
    with pytest.raises(latchkey.LockTimeout):
        other.campaign(b"x", timeout=0.05)
    leadership.resign()
    assert election.leader() is None and election.holds == 0
    with pytest.raises(latchkey.NotHeld):
        leadership.resign()
    with pytest.raises(latchkey.NotHeld):
        leadership.check()
    with other.campaign("", timeout=0) as nxt:  # an empty value; a str is UTF-8
        assert nxt.term > leadership.term
        assert other.leader() == Leader(nxt.term, b"")
    assert other.leader() is None, "leaving the with block resigned"


def test_an_observer_is_woken_by_a_resignation_and_the_next_leader(
    client: Client, url: str, name: str
) -> None:
    election = client.election(name)
    first = election.campaign(b"a")
    known = election.leader()
    assert known is not None
    seen: list[Optional[Leader]] = []
    errors: list[BaseException] = []

    def observer() -> None:
        try:
            with Client(url) as other:
                watched = other.election(name)
                now: Optional[Leader] = known
                # Nobody, then the next leader; or the next leader at once
                # if its campaign was faster than the look after the
                # resignation.
                while now is None or now.term == known.term:
                    now = watched.observe(now, timeout=30)
                    seen.append(now)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=observer)
    t.start()
    first.resign()
    second = client.election(name).campaign(b"b", timeout=30)
    t.join(30)
    assert not errors, errors
    assert seen[-1] == Leader(second.term, b"b")
    assert seen[:-1] in ([], [None]), seen
    # observe() with the current leader waits; a short timeout says so.
    with pytest.raises(latchkey.LockTimeout):
        election.observe(seen[-1], timeout=0.05)
    # ... and one that knows an older leader returns at once.
    assert election.observe(known, timeout=0) == seen[-1]
    second.resign()


def test_watch_yields_every_change(client: Client, name: str) -> None:
    election = client.election(name)
    changes = election.watch(timeout_per_change=30)
    assert next(changes) is None
    leadership = election.campaign(b"w")
    assert next(changes) == Leader(leadership.term, b"w")
    leadership.resign()
    assert next(changes) is None
    changes.close()


def test_a_killed_leader_is_replaced_within_its_ttl(
    client: Client, url: str, name: str, subprocess_env: dict[str, str]
) -> None:
    script = textwrap.dedent(
        f"""
        import time, latchkey
        client = latchkey.Client({url!r})
        leadership = client.election({name!r}, ttl=0.5).campaign(b"doomed")
        print(leadership.term, flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=subprocess_env
    )
    try:
        assert child.stdout is not None
        dead_term = int(child.stdout.readline())
        election = client.election(name)
        assert election.leader() == Leader(dead_term, b"doomed")
        with pytest.raises(latchkey.LockTimeout):
            election.campaign(b"heir", timeout=0)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        # Its lease (0.5 s, no longer renewed) ends; the heir is elected then.
        with election.campaign(b"heir", timeout=20) as heir:
            assert heir.term > dead_term
            assert election.leader() == Leader(heir.term, b"heir")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_leadership_whose_key_is_deleted_is_reported_lost(
    client: Client, url: str, name: str
) -> None:
    reported = threading.Event()
    seen: list[LostLease] = []

    def on_lost(lost: LostLease) -> None:
        seen.append(lost)
        reported.set()

    election = client.election(name, ttl=0.9, on_lost=on_lost)
    leadership = election.campaign(b"v")
    token, term = leadership.token, leadership.term
    assert redis_cli(url, "DEL", f"latchkey:elect:{{{name}}}") == "1"
    assert reported.wait(20), "no on_lost report"
    assert (seen[0].name, seen[0].owner_token, seen[0].fencing_token) == (name, token, term)
    assert leadership.lost
    with pytest.raises(latchkey.LostError):
        leadership.check()
    assert election.leader() is None
    with pytest.raises(latchkey.NotHeld):
        leadership.resign()
    assert election.holds == 0


def test_bad_input_is_refused(client: Client, name: str) -> None:
    with pytest.raises(latchkey.InvalidArgument):
        client.election("")
    with pytest.raises(latchkey.InvalidArgument):
        client.election(name, ttl=0.001)  # the library's 10 ms minimum
    with pytest.raises(TypeError):
        client.election(name, reentrant=True)  # type: ignore[call-arg]
    election = client.election(name)
    with pytest.raises(latchkey.InvalidArgument):
        election.campaign(b"x" * (latchkey.MAX_LEADER_VALUE + 1))
    with pytest.raises(TypeError):
        election.campaign(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        election.campaign(b"x", timeout=-2)
    with pytest.raises(TypeError):
        election.observe(3)  # type: ignore[arg-type]
    assert election.leader() is None, "nothing was taken"
    assert election.holds == 0
    # The largest value is accepted, and read back whole.
    value = bytes(range(256)) * (latchkey.MAX_LEADER_VALUE // 256)
    with election.campaign(value) as leadership:
        assert election.leader() == Leader(leadership.term, value)


def test_cancel_ends_a_campaign_and_an_observation(client: Client, name: str) -> None:
    election = client.election(name)
    held = election.campaign(b"held")
    stop = Cancel()
    outcome: list[BaseException] = []

    def wait(what: str) -> None:
        try:
            if what == "campaign":
                election.campaign(b"waiter", cancel=stop)
            else:
                election.observe(election.leader(), cancel=stop)
        except BaseException as e:
            outcome.append(e)

    threads = [threading.Thread(target=wait, args=(w,)) for w in ("campaign", "observe")]
    for t in threads:
        t.start()
    stop.cancel()
    for t in threads:
        t.join(10)
    assert len(outcome) == 2 and all(isinstance(e, latchkey.Cancelled) for e in outcome)
    assert election.leader() == Leader(held.term, b"held")
    held.resign()
    assert election.holds == 0


def test_a_leadership_survives_garbage_collection_until_close(url: str, name: str) -> None:
    client = Client(url)
    client.election(name).campaign(b"kept")  # neither the Leadership nor the Election is kept
    gc.collect()
    with Client(url) as observer:
        other = observer.election(name)
        known = other.leader()
        assert known is not None and known.value == b"kept", "the collector resigned"
        client.close()  # the library's close resigns
        assert other.observe(known, timeout=10) is None


def test_an_os_fork_child_leaves_the_parents_leadership(client: Client, name: str) -> None:
    # The child is refused the inherited Election and Leadership, closes
    # the inherited Client and runs the exit handlers; the parent still leads.
    election = client.election(name, ttl=5, fair=True)
    leadership = election.campaign(b"parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        for use in (leadership.resign, election.leader, lambda: election.campaign(b"c", 0)):
            try:
                use()
                code = 3  # used the parent's handle or hold
            except Exception:
                pass
        try:
            client.close()
        except Exception:
            pass
        del leadership, election
        gc.collect()
        atexit._run_exitfuncs()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    leadership.check()
    assert election.leader() == Leader(leadership.term, b"parent")
    leadership.resign()


def test_close_resigns_and_ends_waits(url: str, name: str) -> None:
    client = Client(url)
    election = client.election(name)
    leadership = election.campaign(b"x")
    known = election.leader()
    outcome: list[object] = []

    def observer() -> None:
        try:
            outcome.append(election.observe(known))
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=observer)
    t.start()
    client.close()
    t.join(10)
    # ClientClosed; or, when the library's look for a change started just
    # after the close began (it checks for a close before it looks, not
    # after), the resignation that the close made: nobody leads.
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], latchkey.ClientClosed) or outcome[0] is None, outcome
    with pytest.raises(latchkey.NotHeld):
        leadership.check()  # a close is an ending, not a loss
    with pytest.raises(latchkey.ClientClosed):
        election.campaign(b"y", timeout=0)
    with Client(url) as other:
        assert other.election(name).leader() is None


def test_same_keys_as_the_library(client: Client, url: str, name: str) -> None:
    # Rust, C and Go keep an election's leader under <prefix>:elect:{name}
    # (a lock's key: the leader's token) and its announcement under
    # <prefix>:elect:{name}:value; Python goes through the same C ABI.
    with client.election(name).campaign(b"v") as leadership:
        assert redis_cli(url, "GET", f"latchkey:elect:{{{name}}}") == leadership.token
        assert redis_cli(url, "HGET", f"latchkey:elect:{{{name}}}:value", "value") == "v"
    assert redis_cli(url, "EXISTS", f"latchkey:{{{name}}}") == "0", "not a lock's key"


def test_election_refuses_pickling(client: Client, name: str) -> None:
    import pickle

    election = client.election(name)
    assert isinstance(election, Election)
    with pytest.raises(TypeError):
        pickle.dumps(election)
    with election.campaign(b"v") as leadership:
        with pytest.raises(TypeError):
            pickle.dumps(leadership)
        assert "leading" in repr(leadership) and name in repr(election)
    assert "resigned" in repr(leadership)


def test_async_election(client: Client, name: str) -> None:
    async def main() -> None:
        election = client.async_election(name)
        assert await election.leader() is None
        changes = election.watch(timeout_per_change=30)
        assert await changes.__anext__() is None
        async with await election.campaign(b"a") as leadership:
            assert leadership.value == b"a" and leadership.name == name
            assert await changes.__anext__() == Leader(leadership.term, b"a")
            assert await leadership.owned()
            leadership.check()
            # A cancelled campaign resigns what it may have won.
            waiter = asyncio.ensure_future(election.campaign(b"b"))
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            # A cancelled observation ends at once.
            observer = asyncio.ensure_future(election.observe(await election.leader()))
            await asyncio.sleep(0)
            observer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await observer
        assert await changes.__anext__() is None
        await changes.aclose()
        second = await election.campaign("b", timeout=5)
        assert second.term > leadership.term
        await second.resign()
        assert election.holds == 0

    asyncio.run(main())
