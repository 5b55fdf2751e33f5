"""The Lock: a named distributed lock, acquired and released like
``threading.Lock`` or redis-py's ``Lock``, with fencing tokens and a loud
lost-lease callback."""

from __future__ import annotations

import _thread
import atexit
import itertools
import logging
import os
import threading
import time
import weakref
from ctypes import c_bool, c_char_p, c_uint64, c_void_p
from dataclasses import dataclass
from types import TracebackType
from typing import Callable, NoReturn, Optional

from . import _args
from ._lib import (
    LOST_CALLBACK,
    OK,
    TIMEOUT,
    USER_FREE,
    discard_error,
    lib,
    raise_error,
)
from .client import Client
from .errors import LatchkeyError, NotHeld

__all__ = ["Lock", "LostLease"]

_log = logging.getLogger("latchkey")

_allocate_lock = _thread.allocate_lock
_start_new_thread = _thread.start_new_thread
_get_ident = threading.get_ident
_main_thread = threading.main_thread

# Prebound entry points of the hot path.
_acquire = lib.latchkey_lock_acquire
_try_acquire = lib.latchkey_lock_try_acquire
_release = lib.latchkey_guard_release
_guard_free = lib.latchkey_guard_free
_lock_free = lib.latchkey_lock_free

# How long an interrupted wait gives its helper thread to finish after the
# cancellation (it ends at once unless a Redis command is in flight, which
# the command timeout bounds).
_HELPER_GRACE_S = 60.0

# A wait longer than this on the main thread runs where Ctrl-C can stop it
# (see Lock._wait_interruptibly); shorter ones are one plain call.
_SHORT_WAIT_MS = 100


@dataclass(frozen=True)
class LostLease:
    """What the ``on_lost`` callback is given when a lease is lost."""

    name: str
    """The lock's name."""
    fencing_token: int
    """The fencing token of the lost lease."""
    reason: str
    """Why it was lost (the lock was gone or taken, or Redis could not
    confirm it before it ran out)."""


# --- the lost-lease callback ---------------------------------------------------------
#
# The library calls one C trampoline for every lock, with `user` set to a
# number that keys the Python callable in _CALLBACKS. The trampolines are
# module globals, so they live as long as the interpreter; the library calls
# _user_free exactly once per number when no callback can run any more
# (after the options, the lock and its guards are freed), which drops the
# callable.

_CALLBACKS: dict[int, Callable[[LostLease], object]] = {}
_CALLBACK_IDS = itertools.count(1)


def _dispatch_lost(
    user: Optional[int],
    name: Optional[bytes],
    owner_token: Optional[bytes],
    token: int,
    reason: Optional[bytes],
) -> None:
    # Runs on the library's renewal thread. Nothing may escape: an
    # exception is logged, never raised into C.
    try:
        callback = _CALLBACKS.get(user or 0)
        if callback is None:
            return
        lost = LostLease(
            (name or b"").decode("utf-8", "replace"),
            int(token),
            (reason or b"").decode("utf-8", "replace"),
        )
        try:
            callback(lost)
        except BaseException:
            _log.exception("latchkey: the on_lost callback of lock %r raised", lost.name)
    except BaseException:  # pragma: no cover - interpreter shutting down
        pass


def _drop_callback(user: Optional[int]) -> None:
    try:
        _CALLBACKS.pop(user or 0, None)
    except BaseException:  # pragma: no cover - interpreter shutting down
        pass


_LOST_TRAMPOLINE = LOST_CALLBACK(_dispatch_lost)
_USER_FREE_TRAMPOLINE = USER_FREE(_drop_callback)


def _free_lock(handle: int, guards: list[int]) -> None:
    """Finalizer of a garbage-collected Lock (nothing else can use it any
    more): frees its guards, which releases any lock still held (best
    effort), and the lock handle."""
    while guards:
        _guard_free(guards.pop())
    _lock_free(handle)


# Live locks: disowned by a forked child, given back at interpreter exit.
_LIVE: "weakref.WeakSet[Lock]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    from .client import _LIVE as live_clients

    for client in list(live_clients):
        client._after_fork_in_child()
    for lock in list(_LIVE):
        lock._after_fork_in_child()


def _at_exit() -> None:
    """At interpreter exit, gives back every lock still held (best effort),
    as garbage collection would have. Handles are not freed: a daemon
    thread may still be inside a call that uses them, and the process is
    ending anyway. Clients are left alone for the same reason."""
    for lock in list(_LIVE):
        lock._release_all_at_exit()
    from .client import _LIVE as live_clients

    for client in list(live_clients):
        client._finalizer.detach()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


class Lock:
    """A named distributed lock.

    Made by :meth:`Client.lock` (or ``Lock(client, name, ...)``):

    - ``ttl``: the lease length in seconds (default 30; the library accepts
      10 ms to 30 days). With ``auto_renew`` (the default) the client's
      renewal thread renews it every ttl/3 while it is held, so the ttl only
      bounds how long a crashed holder blocks others.
    - ``reentrant``: this Lock may acquire again while it holds the lock
      (nested ``with`` blocks); each acquire needs its own release. The
      owner is the Lock object, not the thread.
    - ``on_lost``: called with a :class:`LostLease` when a held lease is
      lost (renewal found the key gone or taken, or could not confirm it in
      time). It runs on the library's renewal thread: keep it short, and do
      not make it refer to this Lock (that would keep the Lock alive for
      ever). Exceptions in it are logged on the ``latchkey`` logger.
    - ``blocking_timeout``: how long ``with lock:`` waits (None: for ever).
    - ``retry_jitter``, ``renew_every``: seconds; the library's defaults
      (up to 5 ms; ttl/3) when None.

    Acquire with :meth:`acquire` / :meth:`release`, or ``with lock:``. A
    plain (non-reentrant) Lock holds at most one lease at a time: like
    ``threading.Lock``, acquiring it again while it is held waits for the
    release, which may come from another thread. A lock still held when the
    Lock is garbage-collected is released (best effort).

    A Lock is thread-safe. Blocking calls release the GIL, and a wait on the
    main thread can be interrupted with Ctrl-C.
    """

    _handle: Optional[int]

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        reentrant: bool = False,
        on_lost: Optional[Callable[[LostLease], object]] = None,
        blocking_timeout: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> None:
        self._handle = None
        self._guards: list[int] = []
        self._mutex = threading.Lock()
        self._forked = False
        self._pid = os.getpid()
        if not isinstance(client, Client):
            raise TypeError(f"client must be a latchkey.Client, not {type(client).__name__}")
        name_b = _args.text(name, "name")
        ttl_ms = _args.positive_ms(ttl, "ttl")
        if on_lost is not None and not callable(on_lost):
            raise TypeError(f"on_lost must be callable, not {type(on_lost).__name__}")
        if blocking_timeout is not None:
            _args.wait_ms(blocking_timeout)  # checked now, used by __enter__
        jitter_ms = (
            None if retry_jitter is None else _args.non_negative_ms(retry_jitter, "retry_jitter")
        )
        renew_ms = _args.optional_positive_ms(renew_every, "renew_every")
        self._client = client
        self._name = name
        self._reentrant = bool(reentrant)
        self._blocking_timeout = blocking_timeout

        options = c_void_p()
        err = c_void_p()
        status = lib.latchkey_lock_options_new(options, err)
        if status:
            raise_error(status, err)
        try:
            for setter, value in (
                (lib.latchkey_lock_options_set_ttl_ms, ttl_ms),
                (lib.latchkey_lock_options_set_auto_renew, bool(auto_renew)),
                (lib.latchkey_lock_options_set_reentrant, self._reentrant),
                (lib.latchkey_lock_options_set_retry_jitter_ms, jitter_ms),
                (lib.latchkey_lock_options_set_renew_every_ms, renew_ms),
            ):
                if value is not None:
                    status = setter(options, value, err)
                    if status:
                        raise_error(status, err)
            if on_lost is not None:
                key = next(_CALLBACK_IDS)
                _CALLBACKS[key] = on_lost
                status = lib.latchkey_lock_options_set_on_lost(
                    options, _LOST_TRAMPOLINE, key, _USER_FREE_TRAMPOLINE, err
                )
                if status:
                    _CALLBACKS.pop(key, None)  # on failure the library did not take it
                    raise_error(status, err)
            handle = c_void_p()
            client_handle = client._enter()
            try:
                status = lib.latchkey_lock_new(client_handle, name_b, options, handle, err)
            finally:
                client._exit()
            if status:
                raise_error(status, err)
        finally:
            # The lock keeps what it needs of the options (and the callback).
            lib.latchkey_lock_options_free(options)
        if not handle.value:  # pragma: no cover - the ABI promises a handle
            raise LatchkeyError("latchkey_lock_new succeeded without a lock handle")
        self._handle = handle.value
        self._finalizer = weakref.finalize(self, _free_lock, handle.value, self._guards)
        self._finalizer.atexit = False  # see _at_exit
        _LIVE.add(self)

    # --- acquiring ----------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Acquires the lock: True when acquired, False if it stayed held by
        another owner (or Redis did not answer in the command timeout).

        ``blocking=False`` makes one attempt (which may also take a lock that
        was just released to a woken waiter). Otherwise it waits, without
        polling (woken by the holder's release), at most ``timeout`` seconds
        (None or -1: for ever; 0: one attempt that leaves a lock being handed
        to a woken waiter to that waiter). Other failures raise a
        :class:`LatchkeyError`. A wait on the main thread can be interrupted
        by Ctrl-C (KeyboardInterrupt), leaving the lock not acquired.
        """
        return self._acquire(blocking, timeout, False)

    def _acquire(self, blocking: bool, timeout: Optional[float], raise_timeout: bool) -> bool:
        handle = self._handle
        if handle is None:
            raise self._unusable()
        if not blocking:
            if timeout is not None:
                raise ValueError("can't specify a timeout for a non-blocking call")
            ms = 0
        else:
            ms = -1 if timeout is None else _args.wait_ms(timeout)
        guard = c_void_p()
        err = c_void_p()
        try:
            if not blocking:
                status = _try_acquire(handle, guard, err)
            elif (ms < 0 or ms > _SHORT_WAIT_MS) and _get_ident() == _main_thread().ident:
                # On the main thread a long wait must not hold off signals:
                # first one attempt (the uncontended case: a single call),
                # then wait where Ctrl-C can interrupt the wait.
                started = time.monotonic() if ms > 0 else 0.0
                status = _acquire(handle, 0, None, guard, err)
                if status == TIMEOUT:
                    if ms > 0:
                        ms = max(0, ms - int((time.monotonic() - started) * 1000.0))
                    if ms != 0:
                        discard_error(err)
                        status = self._wait_interruptibly(handle, ms, guard, err)
            else:
                status = _acquire(handle, ms, None, guard, err)
            if status == OK:
                self._keep(guard.value)  # type: ignore[arg-type]
                return True
        except BaseException:
            # Say, KeyboardInterrupt right after the library granted the
            # lock: give it back rather than leave a lease nobody releases.
            if guard.value and guard.value not in self._guards:
                _guard_free(guard)
            raise
        if status == TIMEOUT and not raise_timeout:
            discard_error(err)
            return False
        raise_error(status, err)

    def _wait_interruptibly(self, handle: int, ms: int, guard: c_void_p, err: c_void_p) -> int:
        """Waits for the lock on a helper thread while this (main) thread
        waits on a threading lock, which signals interrupt: Ctrl-C raises
        KeyboardInterrupt here, the wait is cancelled through a
        latchkey_cancel handle, and a lock acquired meanwhile is given back.
        (A ctypes call itself cannot be interrupted by a signal.)"""
        cancel = c_void_p()
        status = lib.latchkey_cancel_new(cancel, err)
        if status:
            return int(status)
        outcome: list[int] = []
        done = _allocate_lock()
        done.acquire()

        def wait(owner: Lock = self) -> None:
            # `owner` keeps the Lock (and so `handle`) alive while this runs.
            try:
                outcome.append(_acquire(handle, ms, cancel, guard, err))
            finally:
                done.release()

        started = False
        try:
            _start_new_thread(wait, ())
            started = True
            done.acquire()
        except BaseException as e:
            if not started and isinstance(e, RuntimeError):
                # The helper thread could not be created.
                lib.latchkey_cancel_free(cancel)
                raise
            # Interrupted (KeyboardInterrupt, or whatever a signal handler
            # raised): stop the wait and let the helper finish, without
            # letting further signals cut this short; then give back a lock
            # that was acquired meanwhile.
            lib.latchkey_cancel_trigger(cancel, None)
            finished = False
            deadline = time.monotonic() + _HELPER_GRACE_S
            while not finished and time.monotonic() < deadline:
                try:
                    finished = done.acquire(timeout=0.1)
                except BaseException:
                    pass
            if finished:
                if outcome and outcome[0] == OK and guard.value:
                    _guard_free(guard)
                discard_error(err)
                lib.latchkey_cancel_free(cancel)
            # else: the helper never ran or is stuck; leak its small cancel
            # handle rather than free it under its feet.
            guard.value = None
            raise
        lib.latchkey_cancel_free(cancel)
        if not outcome:
            raise LatchkeyError(f"acquiring lock {self._name!r}: the waiting thread failed")
        return outcome[0]

    def _keep(self, guard: int) -> None:
        with self._mutex:
            guards = self._guards
            if self._reentrant or not guards:
                guards.append(guard)
                return
            # A plain lock has one lease at a time: an older guard still
            # here was lost or expired (the library gave the lock to a new
            # owner token), so it is dropped.
            stale = guards[:]
            guards[:] = [guard]
        for old in stale:
            _guard_free(old)

    def release(self) -> None:
        """Releases the lock (for a reentrant lock, the innermost hold).

        Raises :class:`NotHeld` if this Lock does not hold it, or if the
        lease had been lost meanwhile (expired or force-unlocked, so someone
        else may have held it: the lock is never deleted from under another
        owner). Redis failures raise too; the lease then runs out at its
        ttl. After any outcome the hold counts as released.
        """
        err = c_void_p()
        with self._mutex:
            guards = self._guards
            if not guards:
                raise NotHeld(f"lock {self._name!r} is not held by this Lock")
            guard = guards.pop()
            try:
                status = _release(guard, err)
            finally:
                _guard_free(guard)
        if status:
            raise_error(status, err)

    def __enter__(self) -> "Lock":
        self._acquire(True, self._blocking_timeout, True)
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    # --- the current hold ---------------------------------------------------------

    def _top(self) -> int:
        # Call with self._mutex held.
        if not self._guards:
            raise NotHeld(f"lock {self._name!r} is not held by this Lock")
        return self._guards[-1]

    def extend(self, ttl: float) -> None:
        """Sets the lease to ``ttl`` seconds from now, if it is still ours
        (unlike redis-py's ``extend``, which adds time). Auto-renewal goes
        on with the new ttl. :class:`NotHeld` if the lease was lost or
        released."""
        ttl_ms = _args.positive_ms(ttl, "ttl")
        err = c_void_p()
        with self._mutex:
            status = lib.latchkey_guard_extend(self._top(), ttl_ms, err)
        if status:
            raise_error(status, err)

    def check(self) -> None:
        """Raises :class:`LostError` (with the reason) if the lease was
        lost, :class:`NotHeld` if this Lock does not hold the lock. Asks the
        local state only, not Redis."""
        err = c_void_p()
        with self._mutex:
            status = lib.latchkey_guard_check(self._top(), err)
        if status:
            raise_error(status, err)

    def owned(self) -> bool:
        """Whether this Lock holds the lock: its current hold is neither
        lost nor released, and Redis confirms that hold (one round trip)."""
        held = c_bool()
        err = c_void_p()
        with self._mutex:
            if not self._guards:
                return False
            status = lib.latchkey_guard_confirm(self._guards[-1], held, err)
        if status:
            raise_error(status, err)
        return bool(held.value)

    def locked(self) -> bool:
        """Whether anyone holds the lock (one round trip, through the client)."""
        return self._client.is_locked(self._name)

    @property
    def fencing_token(self) -> int:
        """The fencing token of the current hold: strictly greater than
        every token issued before for this name. Hand it to the resource
        you write to. :class:`NotHeld` if this Lock does not hold the lock."""
        out = c_uint64()
        err = c_void_p()
        with self._mutex:
            status = lib.latchkey_guard_fencing_token(self._top(), out, err)
        if status:
            raise_error(status, err)
        return int(out.value)

    @property
    def token(self) -> str:
        """The owner token of the current hold, as stored in Redis (32 hex
        digits). :class:`NotHeld` if this Lock does not hold the lock."""
        out = c_char_p()
        err = c_void_p()
        with self._mutex:
            status = lib.latchkey_guard_owner_token(self._top(), out, err)
            if status:
                raise_error(status, err)
            return (out.value or b"").decode("ascii", "replace")

    @property
    def remaining(self) -> float:
        """Seconds the current lease is certainly still ours on the local
        monotonic clock (0.0 when lost, expired or not held)."""
        out = c_uint64()
        err = c_void_p()
        with self._mutex:
            if not self._guards:
                return 0.0
            status = lib.latchkey_guard_remaining_ms(self._guards[-1], out, err)
        if status:
            raise_error(status, err)
        return out.value / 1000.0

    @property
    def name(self) -> str:
        """The lock's name."""
        return self._name

    @property
    def reentrant(self) -> bool:
        """Whether this Lock may nest."""
        return self._reentrant

    @property
    def holds(self) -> int:
        """How many holds this Lock has (at most 1 for a plain lock)."""
        return len(self._guards)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.Lock cannot be pickled or copied: "
            "make a new Client and Lock in the other process"
        )

    def __repr__(self) -> str:
        kind = "reentrant " if self._reentrant else ""
        return f"<latchkey.Lock {kind}{self._name!r} holds={len(self._guards)}>"

    # --- lifetime -----------------------------------------------------------------

    def _unusable(self) -> LatchkeyError:
        if self._forked:
            return LatchkeyError(
                f"this latchkey.Lock was made in process {self._pid}, before a fork; "
                "a forked child must open its own Client and Lock"
            )
        return LatchkeyError("the latchkey.Lock is not usable")  # pragma: no cover

    def _release_all_at_exit(self) -> None:
        self._finalizer.detach()
        # A thread stuck in a call on a guard holds the mutex: leave it be.
        if not self._mutex.acquire(timeout=1.0):
            return
        try:
            while self._guards:
                _guard_free(self._guards.pop())
        finally:
            self._mutex.release()

    def _after_fork_in_child(self) -> None:
        # The parent's handles and leases stay the parent's: the child
        # neither uses nor releases them.
        self._finalizer.detach()
        self._mutex = threading.Lock()
        self._guards = []
        self._handle = None
        self._forked = True
