"""The Python API against one redis-server: acquire, release, timeouts,
extend, inspection, fencing, context managers, reentrancy, bad input."""

from __future__ import annotations

import math
import socket
import threading
import time

import pytest

import latchkey
from latchkey import Client


def test_version_and_library() -> None:
    assert latchkey.library_version() == latchkey.__version__
    assert latchkey.library_path.is_file()


def test_acquire_release_and_state(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=5)
    assert not lock.locked()
    assert not lock.owned()
    assert lock.acquire() is True
    assert lock.locked()
    assert lock.owned()
    assert lock.holds == 1
    token = lock.fencing_token
    assert isinstance(token, int) and token > 0
    assert len(lock.token) == 32 and int(lock.token, 16) >= 0
    assert 0 < lock.remaining <= 5
    lock.check()
    info = client.inspect(name)
    assert info is not None
    assert info.owner_token == lock.token
    assert info.fencing_token == token
    assert info.ttl is not None and 0 < info.ttl <= 5
    assert info.reentrant is False and info.hold_count == 1
    lock.release()
    assert not lock.locked()
    assert not lock.owned()
    assert client.inspect(name) is None
    assert lock.remaining == 0.0


def test_release_when_not_held_raises(client: Client, name: str) -> None:
    lock = client.lock(name)
    with pytest.raises(latchkey.NotHeld, match="not held"):
        lock.release()
    with pytest.raises(latchkey.NotHeld):
        lock.check()
    with pytest.raises(latchkey.NotHeld):
        lock.fencing_token
    with pytest.raises(latchkey.NotHeld):
        lock.token
    with pytest.raises(latchkey.NotHeld):
        lock.extend(5)


def test_fencing_tokens_grow(client: Client, name: str) -> None:
    lock = client.lock(name)
    tokens = []
    for _ in range(5):
        with lock:
            tokens.append(lock.fencing_token)
    assert tokens == sorted(tokens) and len(set(tokens)) == 5


def test_two_locks_exclude_each_other(client: Client, name: str) -> None:
    first = client.lock(name)
    second = client.lock(name)
    assert first.acquire()
    assert second.acquire(blocking=False) is False
    assert second.acquire(timeout=0) is False
    started = time.monotonic()
    assert second.acquire(timeout=0.3) is False
    assert time.monotonic() - started >= 0.29
    assert second.locked() and not second.owned()
    first.release()
    assert second.acquire(blocking=False) is True
    second.release()


def test_non_blocking_with_timeout_is_refused(client: Client, name: str) -> None:
    with pytest.raises(ValueError, match="non-blocking"):
        client.lock(name).acquire(blocking=False, timeout=1)


def test_waiter_gets_the_lock_when_released(client: Client, name: str) -> None:
    holder = client.lock(name)
    # Acquired on one thread, used and released on this one.
    waiter = client.lock(name, thread_local=False)
    holder.acquire()
    got: list[tuple[bool, float]] = []

    def wait() -> None:
        started = time.monotonic()
        got.append((waiter.acquire(timeout=10), time.monotonic() - started))

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    holder.release()
    t.join(10)
    assert got and got[0][0] is True
    assert got[0][1] < 5, "the waiter is woken by the release, not by the ttl"
    assert waiter.fencing_token > 0
    waiter.release()


def test_waiting_on_the_main_thread_with_a_timeout(client: Client, name: str) -> None:
    # Long waits on the main thread run through the interruptible path.
    holder = client.lock(name, thread_local=False)  # released by a timer thread
    holder.acquire()
    waiter = client.lock(name)
    started = time.monotonic()
    assert waiter.acquire(timeout=0.6) is False
    assert 0.55 <= time.monotonic() - started < 5
    threading.Timer(0.2, holder.release).start()
    assert waiter.acquire(timeout=10) is True
    waiter.release()


def test_context_manager(client: Client, name: str) -> None:
    lock = client.lock(name)
    with lock as entered:
        assert entered is lock
        assert lock.owned()
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="boom"):
        with lock:
            raise RuntimeError("boom")
    assert not lock.locked(), "released when the block raises"


def test_context_manager_times_out(client: Client, name: str) -> None:
    holder = client.lock(name)
    holder.acquire()
    waiter = client.lock(name, blocking_timeout=0.2)
    with pytest.raises(latchkey.LockTimeout, match=name) as raised:
        with waiter:
            pytest.fail("must not enter")
    assert isinstance(raised.value, TimeoutError)
    assert isinstance(raised.value, latchkey.LatchkeyError)
    assert raised.value.status == 2
    holder.release()


def test_context_manager_reports_a_lost_lease(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=5)
    with pytest.raises(latchkey.NotHeld):
        with lock:
            client.force_unlock(name)
    assert lock.holds == 0


def test_extend(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=1, auto_renew=False)
    with lock:
        lock.extend(20)
        info = client.inspect(name)
        assert info is not None and info.ttl is not None and info.ttl > 10
        assert lock.remaining > 10
    with pytest.raises(ValueError):
        lock.extend(-1)


def test_a_shorter_extend_keeps_the_lease(client: Client, name: str) -> None:
    # Before: extend(0.3) cut the lock's own lease to 0.3 s while Redis kept
    # 30 s, and check() raised LostError after 0.3 s.
    lock = client.lock(name, ttl=30)
    with lock:
        lock.extend(0.3)
        assert lock.remaining > 20
        time.sleep(0.5)
        lock.check()
        info = client.inspect(name)
        assert info is not None and info.ttl is not None
        assert info.ttl >= lock.remaining


def test_extend_without_replace_ttl_adds_time(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=10, auto_renew=False)
    with lock:
        before = lock.remaining
        lock.extend(5, replace_ttl=False)
        after = lock.remaining
        assert before + 4 < after <= before + 5
        info = client.inspect(name)
        assert info is not None and info.ttl is not None and info.ttl >= after
    lock.acquire()
    client.force_unlock(name)
    with pytest.raises(latchkey.NotHeld):
        lock.extend(1, replace_ttl=False)
    with pytest.raises(latchkey.NotHeld):
        lock.release()


def test_lease_without_renewal_expires(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=0.2, auto_renew=False)
    lock.acquire()
    time.sleep(0.35)
    assert not lock.owned()
    assert not lock.locked()
    other = client.lock(name)
    assert other.acquire(blocking=False)
    with pytest.raises(latchkey.NotHeld):
        lock.release()
    other.release()


def test_plain_lock_reacquired_after_expiry_keeps_one_hold(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=0.1, auto_renew=False)
    lock.acquire()
    first = lock.fencing_token
    time.sleep(0.2)
    assert lock.acquire(timeout=2)
    assert lock.holds == 1
    assert lock.fencing_token > first
    owner = lock._current()
    assert owner is not None and len(owner.slots) == 1, "the expired hold's record went"
    lock.release()
    assert lock.holds == 0


def test_auto_renew_keeps_a_short_lease(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=0.3)
    with lock:
        time.sleep(0.8)
        lock.check()
        assert lock.owned()


def test_force_unlock(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=5)
    assert client.force_unlock(name) is False
    lock.acquire()
    assert client.force_unlock(name) is True
    assert not lock.locked()
    assert not lock.owned(), "Redis no longer names us the owner"
    with pytest.raises(latchkey.NotHeld):
        lock.release()


def test_check_raises_lost_error(client: Client, name: str) -> None:
    lock = client.lock(name, ttl=0.3)
    lock.acquire()
    client.force_unlock(name)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            lock.check()
        except latchkey.LostError as e:
            assert name in str(e)
            break
        time.sleep(0.05)
    else:
        pytest.fail("the lease was never reported lost")
    with pytest.raises(latchkey.NotHeld):
        lock.release()


def test_reentrant_nesting(client: Client, name: str) -> None:
    lock = client.lock(name, reentrant=True)
    other = client.lock(name, reentrant=True)
    with lock:
        with lock:
            assert lock.holds == 2
            info = client.inspect(name)
            assert info is not None and info.reentrant and info.hold_count == 2
            # The owner is the handle; each nested hold has its own token.
            assert info.owner_token != lock.token
            assert other.acquire(blocking=False) is False, "another handle is another owner"
        assert lock.holds == 1
        assert lock.owned()
        info = client.inspect(name)
        assert info is not None and info.hold_count == 1
    assert lock.holds == 0
    assert not lock.locked()
    assert other.acquire(blocking=False)
    other.release()


def test_fenced_write_and_read(client: Client, name: str) -> None:
    resource = name + "-resource"
    assert client.fenced_read(resource) is None
    lock = client.lock(name)
    with lock:
        token = lock.fencing_token
        result = client.fenced_write(resource, token, b"v1\x00binary")
        assert result == (True, token)
        assert result.written and result.highest_token == token
    stale = client.fenced_write(resource, token - 1, b"stale")
    assert stale == (False, token)
    value = client.fenced_read(resource)
    assert value == (token, b"v1\x00binary")
    assert value is not None and value.fencing_token == token
    assert client.fenced_write(resource, token, bytearray(b"")) == (True, token)
    assert client.fenced_read(resource) == (token, b"")
    with pytest.raises(TypeError, match="bytes"):
        client.fenced_write(resource, token, "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        client.fenced_write(resource, -1, b"x")
    with pytest.raises(latchkey.InvalidArgument):
        client.fenced_write(resource, 0, b"x")


def test_lock_is_thread_safe(client: Client, name: str) -> None:
    # One plain Lock shared by threads works like threading.Lock.
    lock = client.lock(name)
    counter = [0]

    def work() -> None:
        for _ in range(25):
            with lock:
                value = counter[0]
                time.sleep(0)
                counter[0] = value + 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert counter[0] == 100
    assert lock.holds == 0


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, 42, b"bytes", ["x"]])
def test_names_must_be_str(client: Client, bad: object) -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        client.lock(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a str"):
        client.inspect(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a str"):
        client.is_locked(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a str"):
        client.force_unlock(bad)  # type: ignore[arg-type]


def test_names_with_nul_or_surrogates(client: Client) -> None:
    with pytest.raises(ValueError, match="NUL"):
        client.lock("a\0b")
    with pytest.raises(ValueError, match="UTF-8"):
        client.lock("a\udcffb")


def test_empty_name_is_refused_by_the_library(client: Client) -> None:
    with pytest.raises(latchkey.InvalidArgument, match="empty") as raised:
        client.lock("")
    assert isinstance(raised.value, ValueError)
    assert raised.value.status == 1
    with pytest.raises(latchkey.InvalidArgument):
        client.inspect("")


def test_too_long_name_is_refused_by_the_library(client: Client) -> None:
    with pytest.raises(latchkey.InvalidArgument):
        client.lock("x" * 5000)


@pytest.mark.parametrize(
    "ttl, error, message",
    [
        (None, TypeError, "ttl must be a number"),
        ("10", TypeError, "ttl must be a number"),
        (True, TypeError, "ttl must be a number"),
        (0, ValueError, "positive"),
        (-1, ValueError, "positive"),
        (math.nan, ValueError, "NaN"),
        (math.inf, ValueError, "finite"),
    ],
)
def test_bad_ttl(client: Client, name: str, ttl: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        client.lock(name, ttl=ttl)  # type: ignore[arg-type]


def test_ttl_out_of_the_library_range(client: Client, name: str) -> None:
    with pytest.raises(latchkey.InvalidArgument, match="ttl"):
        client.lock(name, ttl=0.001)
    with pytest.raises(latchkey.InvalidArgument, match="ttl"):
        client.lock(name, ttl=365 * 86400)


@pytest.mark.parametrize(
    "timeout, error",
    [(-2, ValueError), (math.nan, ValueError), ("1", TypeError), (True, TypeError)],
)
def test_bad_timeout(client: Client, name: str, timeout: object, error: type) -> None:
    lock = client.lock(name)
    with pytest.raises(error, match="timeout"):
        lock.acquire(timeout=timeout)  # type: ignore[arg-type]
    assert lock.holds == 0


def test_bad_callback(client: Client, name: str) -> None:
    with pytest.raises(TypeError, match="on_lost must be callable"):
        client.lock(name, on_lost=42)  # type: ignore[arg-type]


def test_bad_client_arguments(url: str) -> None:
    with pytest.raises(TypeError, match="url must be a str"):
        Client(None)  # type: ignore[arg-type]
    with pytest.raises(latchkey.InvalidArgument):
        Client("not a url")
    with pytest.raises(ValueError, match="command_timeout"):
        Client(url, command_timeout=-1)
    with pytest.raises(ValueError, match="connect_timeout"):
        Client(url, connect_timeout=math.nan)
    with pytest.raises(TypeError, match="pool_size"):
        Client(url, pool_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(latchkey.InvalidArgument):
        Client(url, pool_size=0)
    with pytest.raises(latchkey.InvalidArgument):
        Client(url, prefix="a{b}")
    with pytest.raises(TypeError, match="urls"):
        Client.redlock("redis://a")
    with pytest.raises(latchkey.InvalidArgument):
        Client.redlock([url, url])


# --- clients -----------------------------------------------------------------------


def test_client_options_and_prefix(url: str, name: str) -> None:
    with Client(
        url, prefix="pytest-prefix", connect_timeout=1.5, command_timeout=0.5, pool_size=2
    ) as c:
        assert c.prefix == "pytest-prefix"
        with c.lock(name):
            with Client(url) as default:
                assert not default.is_locked(name), "another prefix is another lock"
                assert default.prefix == "latchkey"
            assert c.is_locked(name)


def test_spin_us_off_and_default_both_lock(url: str, name: str) -> None:
    for spin_us in (0, None, 10000):
        with Client(url, spin_us=spin_us) as c:
            lock = c.lock(name)
            other = c.lock(name)
            assert lock.acquire(timeout=5)
            assert other.acquire(blocking=False) is False
            lock.release()
            assert other.acquire(blocking=False)
            other.release()
            assert not c.is_locked(name)


def test_bad_spin_us_is_refused(url: str) -> None:
    with pytest.raises(latchkey.InvalidArgument, match="at most 10000"):
        Client(url, spin_us=10001)
    with pytest.raises(latchkey.InvalidArgument, match="at most 10000"):
        Client.redlock([url, "redis://127.0.0.1:2", "redis://127.0.0.1:3"], spin_us=2**64 - 1)
    with pytest.raises(ValueError, match="spin_us"):
        Client(url, spin_us=-1)
    with pytest.raises(ValueError, match="spin_us"):
        Client.cluster([url], spin_us=2**64)
    with pytest.raises(TypeError, match="spin_us"):
        Client(url, spin_us=0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="spin_us"):
        Client.sentinel([url], "m", spin_us=True)


def test_close_is_idempotent_and_ends_what_the_client_held(url: str, name: str) -> None:
    c = Client(url)
    lock = c.lock(name)
    lock.acquire()
    c.close()
    c.close()
    assert c.closed
    with pytest.raises(latchkey.LatchkeyError, match="closed"):
        c.inspect(name)
    with pytest.raises(latchkey.LatchkeyError, match="closed"):
        c.lock(name)
    # The close released the hold (see test_close.py): nothing to release,
    # and the Lock acquires nothing any more.
    with pytest.raises(latchkey.NotHeld):
        lock.release()
    with pytest.raises(latchkey.ClientClosed):
        lock.acquire(blocking=False)
    with Client(url) as other:
        assert not other.is_locked(name)


def test_unreachable_redis(name: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with Client(f"redis://127.0.0.1:{port}", connect_timeout=0.5, command_timeout=0.5) as c:
        with pytest.raises(latchkey.ConnectionFailed) as raised:
            c.is_locked(name)
        assert isinstance(raised.value, ConnectionError)
        with pytest.raises((latchkey.ConnectionFailed, latchkey.LockTimeout)):
            c.lock(name).acquire(timeout=0.5)


def test_exception_hierarchy() -> None:
    for cls, base in [
        (latchkey.InvalidArgument, ValueError),
        (latchkey.LockTimeout, TimeoutError),
        (latchkey.ConnectionFailed, ConnectionError),
    ]:
        assert issubclass(cls, latchkey.LatchkeyError) and issubclass(cls, base)
    for cls in [
        latchkey.NotHeld,
        latchkey.LostError,
        latchkey.Cancelled,
        latchkey.ServerError,
        latchkey.NoQuorum,
        latchkey.InternalPanic,
    ]:
        assert issubclass(cls, latchkey.LatchkeyError)


def test_a_panic_comes_back_as_an_exception() -> None:
    from ctypes import byref, c_void_p

    from latchkey._lib import lib, raise_error

    err = c_void_p()
    status = lib.latchkey_debug_panic(byref(err))
    with pytest.raises(latchkey.InternalPanic) as raised:
        raise_error(status, err)
    assert str(raised.value)


def test_handles_cannot_be_pickled_or_copied(client: Client, name: str) -> None:
    import copy
    import pickle

    lock = client.lock(name)
    for obj in (client, lock):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(obj)
        with pytest.raises(TypeError, match="cannot be pickled"):
            copy.copy(obj)


def test_exceptions_pickle(client: Client) -> None:
    import pickle

    with pytest.raises(latchkey.InvalidArgument) as raised:
        client.lock("")
    again = pickle.loads(pickle.dumps(raised.value))
    assert type(again) is latchkey.InvalidArgument and str(again) == str(raised.value)
