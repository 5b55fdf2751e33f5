"""The Lock: a named distributed lock, acquired and released like
``threading.Lock`` or redis-py's ``Lock``, with fencing tokens and a loud
lost-lease callback.

How holds are kept (the rules users see are in README.md, "Threads,
garbage collection, signals, fork and exit"):

- Every acquisition is one C guard with its own owner token (the core's
  model); the binding records it in a :class:`_Slot` *before* the C call
  that fills it in, so the moment the library grants the lock, the grant is
  already recorded: no Python code runs between the two, so no signal can
  fall between them.
- Slots belong to an owner: the acquiring thread (``thread_local=True``,
  the default) or the Lock (``thread_local=False``). For a reentrant Lock
  each owner has its own C lock handle, because the C handle is the
  reentrant owner.
- While an owner has slots it is in ``_HELD``, a module-level registry, so a
  held Lock stays reachable: the garbage collector never frees or releases
  a hold. Interpreter exit cancels every wait and then releases what
  ``_HELD`` still has.
- An interrupted acquire gives back what it took: the slot is forgotten and
  its lease released, by the interrupted thread or, for a wait that runs on
  a helper thread, by whichever of the two sees the grant last.
"""

from __future__ import annotations

import _thread
import atexit
import itertools
import logging
import os
import sys
import threading
import time
import weakref
from ctypes import c_bool, c_char_p, c_uint64, c_void_p
from dataclasses import dataclass
from types import TracebackType
from typing import Callable, NoReturn, Optional

from . import _args
from . import cancel as _cancel
from ._handle import SharedHandle
from ._lib import (
    CANCELLED,
    LOST_CALLBACK,
    NOT_HELD,
    OK,
    TIMEOUT,
    USER_FREE,
    discard_error,
    error_is_busy,
    lib,
    raise_error,
)
from .cancel import Cancel, Wait
from .client import Client
from .errors import Cancelled, LatchkeyError, NotHeld

__all__ = ["Lock", "LostLease"]

_log = logging.getLogger("latchkey")

_allocate_lock = _thread.allocate_lock
_start_new_thread = _thread.start_new_thread
_get_ident = threading.get_ident
_main_thread = threading.main_thread
_getpid = os.getpid
_monotonic = time.monotonic

# This process's id, kept by _after_fork_in_child: what a guard's record
# compares to know whether it was made in this process. (os.getpid() is a
# system call; two per acquire+release were measurable.)
_PID = _getpid()

# Prebound entry points of the hot path.
_acquire = lib.latchkey_lock_acquire
_try_acquire = lib.latchkey_lock_try_acquire
_release = lib.latchkey_guard_release
_guard_free = lib.latchkey_guard_free
_guard_check = lib.latchkey_guard_check
_lock_free = lib.latchkey_lock_free

# How long interpreter exit waits for cancelled waits to return before it
# releases the holds (a wait returns at once unless a Redis command is in
# flight, which the command timeout bounds).
_EXIT_GRACE_S = 5.0

# How often the main thread, while a helper thread waits for a lock, wakes
# to run signal handlers. CPython handles a signal that arrives while a
# thread blocks on a threading lock at once, but not one that arrives in
# the instant between its last check for signals and the start of the
# blocking system call (the signal's C handler only sets a flag, which a
# blocking acquire without a timeout never looks at again): that Ctrl-C
# would wait for the lock's whole wait. Bounded waits look at the flag
# every period, so such a Ctrl-C costs at most this much delay.
_SIGNAL_CHECK_S = 0.1


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
    owner_token: str = ""
    """The owner token of the lost hold (what :attr:`Lock.token` gave for
    it): each acquisition has its own, so it names exactly one hold."""


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
            (owner_token or b"").decode("ascii", "replace"),
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


# --- recorded holds -----------------------------------------------------------------


_PENDING, _LIVE, _DEAD = range(3)


class _Slot:
    """One acquisition: the C guard, written by the acquire call itself."""

    __slots__ = ("guard", "released", "abandoned", "pid")

    def __init__(self) -> None:
        self.guard = c_void_p()
        self.released = False
        # Set when the acquire that fills this slot was interrupted: a
        # grant that arrives afterwards is given back at once.
        self.abandoned = False
        self.pid = _PID

    def live(self) -> bool:
        """Whether it holds a guard that was not released (a lost lease
        still counts: a release must say NotHeld)."""
        return self.state() == _LIVE

    def state(self, ask: bool = True) -> int:
        """_PENDING (no guard yet: an acquire may still be filling it),
        _LIVE, or _DEAD (it holds nothing any more). The guard is read once:
        another thread's acquire may write it at any moment. `ask=False`
        trusts the binding's own record (`released`) instead of asking the
        library: only a client close releases a guard behind the binding's
        back, and a release that a signal cut short between its C call and
        the record."""
        guard = self.guard.value
        if not guard:
            return _DEAD if self.released or self.abandoned else _PENDING
        if self.released or (ask and _guard_check(guard, None) == NOT_HELD):
            return _DEAD
        return _LIVE

    def give_back(self) -> None:
        """Releases the lease if this slot took one (no-op otherwise)."""
        guard = self.guard.value
        if guard and not self.released:
            self.released = True
            _release(guard, None)

    # --- calls on the guard (a Lock's newest hold, or a semaphore's Permit) ----

    def check(self) -> None:
        """Raises LostError if the lease was lost, NotHeld once released."""
        err = c_void_p()
        status = _guard_check(self.guard, err)
        if status:
            raise_error(status, err)

    def extend(self, ttl: float, replace_ttl: bool) -> None:
        """latchkey_guard_extend (replace_ttl) or latchkey_guard_extend_by."""
        ms = _args.positive_ms(ttl, "ttl")
        err = c_void_p()
        if replace_ttl:
            status = lib.latchkey_guard_extend(self.guard, ms, err)
        else:
            status = lib.latchkey_guard_extend_by(self.guard, ms, err)
        if status:
            raise_error(status, err)

    def confirm(self) -> bool:
        """Whether Redis confirms this very hold (one round trip)."""
        held = c_bool()
        err = c_void_p()
        status = lib.latchkey_guard_confirm(self.guard, held, err)
        if status:
            raise_error(status, err)
        return bool(held.value)

    def is_lost(self) -> bool:
        """Whether the lease was lost (local state)."""
        out = c_bool()
        err = c_void_p()
        status = lib.latchkey_guard_lost(self.guard, out, err)
        if status:
            raise_error(status, err)
        return bool(out.value)

    def fencing_token(self) -> int:
        out = c_uint64()
        err = c_void_p()
        status = lib.latchkey_guard_fencing_token(self.guard, out, err)
        if status:
            raise_error(status, err)
        return int(out.value)

    def token(self) -> str:
        out = c_char_p()
        err = c_void_p()
        status = lib.latchkey_guard_owner_token(self.guard, out, err)
        if status:
            raise_error(status, err)
        return (out.value or b"").decode("ascii", "replace")

    def remaining(self) -> float:
        out = c_uint64()
        err = c_void_p()
        status = lib.latchkey_guard_remaining_ms(self.guard, out, err)
        if status:
            raise_error(status, err)
        return out.value / 1000.0

    def __del__(self) -> None:
        # The last reference is gone, so no call uses the guard any more.
        # A guard inherited through fork() is left alone (the core makes it
        # inert; the child never touches the parent's holds).
        try:
            guard = self.guard.value
            if guard and self.pid == _PID:
                self.guard.value = None
                _guard_free(guard)
        except BaseException:  # pragma: no cover - interpreter shutting down
            pass


class _Owner:
    """The holds of one owner (a thread, or the whole Lock), newest last."""

    __slots__ = ("slots", "handle", "mutex", "_handles", "_pid", "__weakref__")

    def __init__(self, handle: Optional[int], handles: Optional[list[int]] = None) -> None:
        self.slots: list[_Slot] = []
        # Its own C lock handle (reentrant locks), or None: the Lock's.
        self.handle = handle
        self.mutex = threading.Lock()
        # The Lock's list of per-owner handles (which the Lock frees if it
        # goes first), so a thread's handle is freed when its owner goes.
        self._handles = handles
        self._pid = _PID

    def __del__(self) -> None:
        # Unreachable: its thread ended and it holds nothing (a holding
        # owner is kept in _HELD), so no call uses its handle. Whoever takes
        # the handle out of the list frees it (this or the Lock's free).
        try:
            handle, handles = self.handle, self._handles
            if handle is None or handles is None or self._pid != _PID:
                return
            try:
                handles.remove(handle)
            except ValueError:
                return
            _lock_free(handle)
        except BaseException:  # pragma: no cover - interpreter shutting down
            pass

    def newest(self, ask: bool = True) -> Optional[_Slot]:
        """The newest live hold. Records of guards that hold nothing any
        more (released, maybe by a release that a signal cut short) are
        dropped; slots still being filled by an acquire are left alone.
        `ask`: see _Slot.state."""
        found: Optional[_Slot] = None
        for slot in self.slots[::-1]:
            state = slot.state(ask)
            if state == _LIVE:
                found = slot
                break
            if state == _DEAD:
                _forget(self, slot)
        return found

    def count(self) -> int:
        """Holds whose lease is neither released nor lost."""
        return sum(
            1 for slot in self.slots if slot.live() and int(_guard_check(slot.guard, None)) == OK
        )


# Owners that may hold something, and their Lock (or Semaphore): what keeps
# a held Lock reachable, and what interpreter exit releases.
_HELD_MUTEX = threading.Lock()
_HELD: "dict[_Owner, object]" = {}

# Every live Lock's, Semaphore's and Client's handle, so that a forked child
# disowns them.
_HANDLES: "weakref.WeakSet[SharedHandle]" = weakref.WeakSet()


def _record(owner: _Owner, lock: object, slot: _Slot) -> None:
    with _HELD_MUTEX:
        _HELD[owner] = lock
        owner.slots.append(slot)


def _forget(owner: _Owner, slot: _Slot) -> None:
    """Removes a slot, and the owner from _HELD once it has none."""
    with _HELD_MUTEX:
        try:
            owner.slots.remove(slot)
        except ValueError:
            pass
        if not owner.slots:
            _HELD.pop(owner, None)


def _drop_lost_before(owner: _Owner, newest: _Slot) -> None:
    """A plain lock granted to an owner again: its older holds hold nothing
    any more (lost or expired, or the core would not have granted it), so
    their records go (their guards are freed when the last user drops
    them) rather than pile up in a long-running loop."""
    head = owner.slots[:1]
    if head and head[0] is newest:
        return  # nothing before it: the usual case, one hold
    for slot in list(owner.slots):
        if slot is newest:
            break
        if slot.guard.value and int(_guard_check(slot.guard.value, None)) != OK:
            _forget(owner, slot)


def _free_lock_handles(extra: list[int], options: int, handle: int) -> None:
    """Frees a Lock's C handles once nothing uses them (see SharedHandle)."""
    while extra:
        _lock_free(extra.pop())
    _lock_free(handle)
    lib.latchkey_lock_options_free(options)


def _after_fork_in_child() -> None:
    # The parent's handles and holds stay the parent's: the child neither
    # uses, releases nor frees them (the core makes them inert anyway).
    global _HELD_MUTEX, _PID
    _PID = _getpid()
    _HELD_MUTEX = threading.Lock()
    for owner in list(_HELD):
        for slot in owner.slots:
            slot.guard.value = None
        owner.slots = []
        owner.mutex = threading.Lock()
    _HELD.clear()
    for handle in list(_HANDLES):
        handle.disown(
            f"was made in process {handle.pid}, before a fork; "
            "a forked child must open its own Client and Lock"
        )
    _cancel._after_fork_in_child()


def _at_exit() -> None:
    """At interpreter exit: cancel every wait (so no lock is handed to a
    thread that dies with the interpreter), let the waits return, then give
    back every lock still held, whichever thread holds it. Handles are not
    freed: a daemon thread may still be inside a call that uses them, and
    the process is ending anyway."""
    _cancel.refuse_new_waits(exiting=True)
    _cancel.wait_for_waits_to_end(_EXIT_GRACE_S)
    with _HELD_MUTEX:
        held = [(owner, list(owner.slots)) for owner in _HELD]
    for owner, slots in held:
        for slot in reversed(slots):
            slot.give_back()
            _forget(owner, slot)


def _at_main_thread_end() -> None:
    """Before the interpreter joins the remaining threads: if the main
    thread ended with Ctrl-C, cancel every wait, so a worker waiting for a
    lock cannot keep the process alive for ever."""
    if isinstance(getattr(sys, "last_value", None), KeyboardInterrupt):
        _cancel.refuse_new_waits()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
try:
    # Runs before non-daemon threads are joined (atexit runs after).
    threading._register_atexit(_at_main_thread_end)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):  # pragma: no cover - other interpreters
    pass


def _lock_options(
    ttl_ms: int,
    auto_renew: bool,
    reentrant: Optional[bool],
    fair: Optional[bool],
    jitter_ms: Optional[int],
    renew_ms: Optional[int],
    on_lost: Optional[Callable[[LostLease], object]],
) -> c_void_p:
    """A new latchkey_lock_options with these settings (None: the
    library's default), for a Lock or a Semaphore; the caller frees it. The
    on_lost callable is registered in _CALLBACKS, which the library's
    user_free call empties once no callback can run any more."""
    options = c_void_p()
    err = c_void_p()
    status = lib.latchkey_lock_options_new(options, err)
    if status:
        raise_error(status, err)
    try:
        for setter, value in (
            (lib.latchkey_lock_options_set_ttl_ms, ttl_ms),
            (lib.latchkey_lock_options_set_auto_renew, bool(auto_renew)),
            (lib.latchkey_lock_options_set_reentrant, reentrant),
            (lib.latchkey_lock_options_set_fair, None if fair is None else bool(fair)),
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
    except BaseException:
        lib.latchkey_lock_options_free(options)
        raise
    return options


def _give_back_late(slot: _Slot, err: c_void_p) -> None:
    """After a helper thread's acquire: a grant that came after the
    acquire was abandoned is given back (see _wait_on_helper)."""
    if slot.abandoned:
        slot.give_back()
        discard_error(err)  # nobody will read it


def _wait_on_helper(
    what: str,
    kind: str,
    shared: SharedHandle,
    call: Callable[[Optional[int]], int],
    late: Callable[[], None],
    wait: Wait,
) -> int:
    """Waits for a lock, permits, a leadership or an election's change on
    a helper thread while this (main) thread waits on a threading lock,
    which signals interrupt: Ctrl-C raises KeyboardInterrupt here and
    cancels the wait. (A ctypes call itself cannot be interrupted by a
    signal.) The main thread's wait is bounded (_SIGNAL_CHECK_S) and
    repeated, so a signal that came just before it blocked is handled too.
    Both threads use `wait` until they close it, and the helper a use of
    `shared` (the Lock's, Semaphore's or Election's handle, `kind` naming
    it); `call(cancel_handle)` is the blocking C call. The helper runs
    `late()` after it: what the call got when the wait was abandoned
    meanwhile is given back (or freed) there, by the helper. `what` names
    it in messages ("lock 'x'")."""
    outcome: list[int] = []
    done = _allocate_lock()
    done.acquire()
    shared.enter(kind)
    cancel_handle = wait.handle

    def run() -> None:
        try:
            outcome.append(call(cancel_handle))
            late()
        finally:
            wait.close()
            shared.exit()
            done.release()

    try:
        try:
            _start_new_thread(run, ())
        except RuntimeError:
            # No helper thread: close its use of the wait and the handle
            # (the handler below closes ours).
            wait.close()
            shared.exit()
            raise
        # A signal handled as the start returns lands in the handler
        # below too: the helper has started, and the trigger ends its
        # wait now or as it begins.
        while not done.acquire(True, _SIGNAL_CHECK_S):
            pass  # a signal that came just before the wait blocked runs here
    except BaseException:
        # Trigger first, in the handler's first call: no further signal
        # can be handled before it (the handle lives until our close).
        _cancel.trigger_handle(cancel_handle or 0)
        wait.close()
        raise
    wait.close()
    if not outcome:  # pragma: no cover - the helper cannot fail otherwise
        raise LatchkeyError(f"acquiring {what}: the waiting thread failed")
    return outcome[0]


class Lock:
    """A named distributed lock.

    Made by :meth:`Client.lock` (or ``Lock(client, name, ...)``):

    - ``ttl``: the lease length in seconds (default 30; the library accepts
      10 ms to 30 days). With ``auto_renew`` (the default) the client's
      renewal thread renews it every ttl/3 while it is held, so the ttl only
      bounds how long a crashed holder blocks others.
    - ``reentrant``: the owner may acquire again while it holds the lock
      (nested ``with`` blocks); each acquire needs its own release.
    - ``fair``: first come, first served across processes and languages;
      no fair caller, not even a non-blocking acquire, takes a free lock
      while a waiter that queued before it waits. A waiter that died holds
      the ones behind it up for at most about 20 s. Not with ``reentrant``
      and not on Redlock (:class:`InvalidArgument`).
    - ``thread_local`` (default True, as in redis-py): a hold belongs to
      the thread that acquired it. :meth:`release`, :meth:`extend`,
      :meth:`check`, :meth:`owned`, :attr:`fencing_token`, :attr:`token`,
      :attr:`remaining` and :attr:`holds` act on the calling thread's
      newest hold; on a thread that holds nothing they raise
      :class:`NotHeld` (or return False / 0). For a reentrant Lock each
      thread is its own reentrant owner: another thread waits like any
      other owner. With ``thread_local=False`` the holds belong to the Lock
      object, and any thread acts on its newest hold (to hand a hold from
      one thread to another); a reentrant Lock then nests across threads.
    - ``on_lost``: called with a :class:`LostLease` when a held lease is
      lost (renewal found the key gone or taken, or could not confirm it in
      time). It runs on the library's renewal thread: keep it short, and do
      not make it refer to this Lock (that would keep the Lock alive for
      ever). Exceptions in it are logged on the ``latchkey`` logger.
    - ``blocking_timeout``: how long ``with lock:`` waits (None: for ever).
    - ``retry_jitter``, ``renew_every``: seconds; the library's defaults
      (up to 5 ms; ttl/3) when None.

    A plain (non-reentrant) Lock acquired again by its owner while held
    waits for the release, like ``threading.Lock``. A Lock that holds the
    lock stays alive (reachable from the module) until it is released, so
    the garbage collector never releases a hold behind its holder's back;
    interpreter exit gives back every hold.

    A Lock is thread-safe. Blocking calls release the GIL; a wait can be
    cancelled from another thread with a :class:`Cancel`, and a wait on
    the main thread with Ctrl-C.
    """

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        reentrant: bool = False,
        fair: bool = False,
        thread_local: bool = True,
        on_lost: Optional[Callable[[LostLease], object]] = None,
        blocking_timeout: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> None:
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
        self._name_b = name_b
        self._reentrant = bool(reentrant)
        self._thread_local = bool(thread_local)
        self._blocking_timeout = blocking_timeout

        options = _lock_options(
            ttl_ms, auto_renew, self._reentrant, fair, jitter_ms, renew_ms, on_lost
        )
        try:
            handle = self._new_handle(options.value)
        except BaseException:
            lib.latchkey_lock_options_free(options)
            raise
        # The options stay alive: a reentrant thread-local Lock makes one
        # more C handle per thread from them. They are freed with the Lock.
        self._extra_handles: list[int] = []
        self._options = options.value
        extra = self._extra_handles
        opts = int(options.value or 0)

        def free(value: int) -> None:
            _free_lock_handles(extra, opts, value)

        self._handle = SharedHandle(handle, free)
        _HANDLES.add(self._handle)
        self._local = threading.local()
        self._shared = None if self._thread_local else _Owner(None)
        # The finalizer sees only the SharedHandle, never this object, so it
        # may run in any order within a reference cycle.
        why = "is closed (garbage-collected)"
        self._finalizer = weakref.finalize(self, self._handle.close, why)
        self._finalizer.atexit = False  # see _at_exit

    def _new_handle(self, options: Optional[int]) -> int:
        handle = c_void_p()
        err = c_void_p()
        client_handle = self._client._enter()
        try:
            status = lib.latchkey_lock_new(client_handle, self._name_b, options, handle, err)
        finally:
            self._client._exit()
        if status:
            raise_error(status, err)
        if not handle.value:  # pragma: no cover - the ABI promises a handle
            raise LatchkeyError("latchkey_lock_new succeeded without a lock handle")
        return int(handle.value)

    # --- owners -------------------------------------------------------------------

    def _owner(self) -> _Owner:
        """The calling thread's owner, made on first use."""
        shared = self._shared
        if shared is not None:
            return shared
        owner: Optional[_Owner] = getattr(self._local, "owner", None)
        if owner is None:
            owner = self._make_owner()
            self._local.owner = owner
        return owner

    def _make_owner(self) -> _Owner:
        """A new owner of holds (a thread's, or an asyncio task's): for a
        reentrant Lock with its own C lock handle, the reentrant owner."""
        handle: Optional[int] = None
        if self._reentrant:
            self._handle.enter("Lock")
            try:
                handle = self._new_handle(self._options)
                self._extra_handles.append(handle)
            finally:
                self._handle.exit()
        return _Owner(handle, self._extra_handles)

    def _current(self) -> Optional[_Owner]:
        """The calling thread's owner if it has one (never makes one)."""
        if self._shared is not None:
            return self._shared
        return getattr(self._local, "owner", None)

    def _newest(self, owner: Optional[_Owner]) -> _Slot:
        slot = owner.newest() if owner is not None else None
        if slot is None:
            raise self._not_held()
        return slot

    def _not_held(self) -> NotHeld:
        if self._shared is not None:
            return NotHeld(f"lock {self._name!r} is not held by this Lock")
        return NotHeld(
            f"lock {self._name!r} is not held by this thread (a Lock's holds belong to "
            "the thread that acquired them; use thread_local=False to share them)"
        )

    # --- acquiring ----------------------------------------------------------------

    def acquire(
        self,
        blocking: bool = True,
        timeout: Optional[float] = None,
        *,
        cancel: Optional[Cancel] = None,
    ) -> bool:
        """Acquires the lock: True when acquired, False if it stayed held by
        another owner (a Redis that does not answer within the command
        timeout raises :class:`ConnectionFailed`).

        ``blocking=False`` makes one attempt (which may also take a lock that
        was just released to a woken waiter). Otherwise it waits, without
        polling (woken by the holder's release), at most ``timeout`` seconds
        (None or -1: for ever; 0: one attempt that leaves a lock being handed
        to a woken waiter to that waiter). ``cancel``: a :class:`Cancel`
        whose ``cancel()``, from any thread, ends the wait with
        :class:`Cancelled`. Other failures raise a :class:`LatchkeyError`.
        A wait on the main thread can be interrupted by Ctrl-C
        (KeyboardInterrupt); an interrupted or cancelled acquire leaves the
        lock not acquired (a grant that raced with it is given back).
        """
        slot = _Slot()
        try:
            acquired = self._acquire_into(slot, blocking, timeout, False, cancel)
        except BaseException:
            self._abandon(slot)
            raise
        return acquired

    def _abandon(self, slot: _Slot, owner: Optional[_Owner] = None) -> None:
        # Gives back what an interrupted acquire took (see _Slot.abandoned).
        slot.abandoned = True
        if owner is None:
            owner = self._current()
        if owner is not None:
            _forget(owner, slot)
        slot.give_back()

    def _acquire_into(
        self,
        slot: _Slot,
        blocking: bool,
        timeout: Optional[float],
        raise_timeout: bool,
        cancel: Optional[Cancel],
        owner: Optional[_Owner] = None,
    ) -> bool:
        if not blocking:
            if timeout is not None:
                raise ValueError("can't specify a timeout for a non-blocking call")
            ms = 0
        else:
            ms = -1 if timeout is None else _args.wait_ms(timeout)
        if cancel is not None and not isinstance(cancel, Cancel):
            raise TypeError(f"cancel must be a latchkey.Cancel, not {type(cancel).__name__}")
        if owner is None:
            # The calling thread's owner (see _owner), without a call when it exists.
            owner = self._shared or getattr(self._local, "owner", None) or self._owner()
        err = c_void_p()
        # Nothing between enter() and the try: an exception there (a
        # KeyboardInterrupt) would leave the handle counted in use for ever.
        handle = self._handle.enter("Lock")
        try:
            _record(owner, self, slot)
            status = self._take(owner.handle or handle, blocking, ms, slot, err, cancel)
            if status == OK:
                if not self._reentrant:
                    _drop_lost_before(owner, slot)
                return True
            _forget(owner, slot)
        finally:
            self._handle.exit()
        if status == TIMEOUT and not raise_timeout:
            discard_error(err)
            return False
        raise_error(status, err)

    def _take(
        self,
        handle: int,
        blocking: bool,
        ms: int,
        slot: _Slot,
        err: c_void_p,
        cancel: Optional[Cancel],
    ) -> int:
        """One C acquire (or a first attempt and then a cancellable wait)
        that writes the guard straight into `slot`."""
        if not blocking:
            return int(_try_acquire(handle, slot.guard, err))
        if (cancel is not None and cancel.cancelled) or _cancel.shutting_down():
            raise Cancelled(f"acquiring lock {self._name!r}: cancelled")
        started = _monotonic() if ms > 0 else 0.0
        status: int = _acquire(handle, 0, None, slot.guard, err)
        # Held, or "not now" (Redlock masters younger than the restart
        # delay, a Cluster slot in migration): wait, as Rust's acquire does.
        if status == OK or ms == 0 or (status != TIMEOUT and not error_is_busy(err)):
            return status
        discard_error(err)
        if ms > 0:
            ms = max(1, ms - int((_monotonic() - started) * 1000.0))
        if _get_ident() == _main_thread().ident:
            return self._wait_on_helper(handle, ms, slot, err, Wait(cancel, users=2))
        wait = Wait(cancel)
        try:
            status = int(_acquire(handle, ms, wait.handle, slot.guard, err))
        finally:
            wait.close()
        if status == CANCELLED:
            _cancel.park_if_exiting()
        return status

    def _wait_on_helper(self, handle: int, ms: int, slot: _Slot, err: c_void_p, wait: Wait) -> int:
        """The wait of the main thread, on a helper thread (see the
        module-level _wait_on_helper)."""

        def call(cancel_handle: Optional[int]) -> int:
            return int(_acquire(handle, ms, cancel_handle, slot.guard, err))

        def late() -> None:
            _give_back_late(slot, err)

        return _wait_on_helper(f"lock {self._name!r}", "Lock", self._handle, call, late, wait)

    def release(self) -> None:
        """Releases the calling thread's newest hold (see ``thread_local``).

        Raises :class:`NotHeld` if it holds none, or if the lease had been
        lost meanwhile (expired or force-unlocked, so someone else may have
        held it: the lock is never deleted from under another owner). Redis
        failures raise too; the lease then runs out at its ttl. After any
        outcome the hold counts as released.
        """
        self._release(self._shared or getattr(self._local, "owner", None))

    def _release(self, owner: Optional[_Owner]) -> None:
        if owner is None:
            raise self._not_held()
        err = c_void_p()
        with owner.mutex:
            # With a single hold and an open client, the binding's own record
            # says whether it was released (see _Slot.state): one C call
            # fewer between the acquire's and the release's round trips.
            # (Were that hold released by a release that a signal cut short
            # before it was recorded, the release below says NotHeld, as
            # newest() would have, and forgets it all the same.)
            ask = len(owner.slots) != 1 or self._client.closed
            slot = owner.newest(ask)
            if slot is None:
                raise self._not_held()
            try:
                status: int = _release(slot.guard, err)
                slot.released = True
            finally:
                _forget(owner, slot)
        if status:
            raise_error(status, err)

    def __enter__(self) -> "Lock":
        slot = _Slot()
        try:
            self._acquire_into(slot, True, self._blocking_timeout, True, None)
        except BaseException:
            # Also a Ctrl-C that lands after the grant, before the block:
            # __exit__ will not run, so give the lock back here.
            self._abandon(slot)
            raise
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    # --- the current hold ---------------------------------------------------------

    def extend(self, ttl: float, replace_ttl: bool = True) -> None:
        """Extends the calling thread's newest lease, if it is still ours.

        With ``replace_ttl=True`` (the default) the lease lasts at least
        ``ttl`` seconds from now: a lease with more left keeps it (Redis
        never shortens a lease, and neither does the lock), and a longer
        ``ttl`` becomes the ttl auto-renewal goes on with. With
        ``replace_ttl=False`` ``ttl`` seconds are added to what is left, as
        redis-py's ``extend(additional_time)`` does. :class:`NotHeld` if the
        lease was lost or released, or this thread holds none."""
        self._extend(self._current(), ttl, replace_ttl)

    def _extend(self, owner: Optional[_Owner], ttl: float, replace_ttl: bool) -> None:
        _args.positive_ms(ttl, "ttl")  # checked before the hold is looked up
        self._newest(owner).extend(ttl, replace_ttl)

    def check(self) -> None:
        """Raises :class:`LostError` (with the reason) if the calling
        thread's newest lease was lost, :class:`NotHeld` if it holds none.
        Asks the local state only, not Redis."""
        self._check(self._current())

    def _check(self, owner: Optional[_Owner]) -> None:
        self._newest(owner).check()

    def owned(self) -> bool:
        """Whether the calling thread holds the lock: its newest hold is
        neither lost nor released, and Redis confirms that very hold (one
        round trip)."""
        return self._owned(self._current())

    def _owned(self, owner: Optional[_Owner]) -> bool:
        slot = owner.newest() if owner is not None else None
        if slot is None:
            return False
        return slot.confirm()

    def locked(self) -> bool:
        """Whether anyone holds the lock (one round trip, through the client)."""
        return self._client.is_locked(self._name)

    @property
    def fencing_token(self) -> int:
        """The fencing token of the calling thread's newest hold: strictly
        greater than every token issued before for this name. Hand it to the
        resource you write to. :class:`NotHeld` if this thread holds none."""
        return self._fencing_token(self._current())

    def _fencing_token(self, owner: Optional[_Owner]) -> int:
        return self._newest(owner).fencing_token()

    @property
    def token(self) -> str:
        """The owner token of the calling thread's newest hold, as stored in
        Redis (32 hex digits; each acquisition has its own).
        :class:`NotHeld` if this thread holds none."""
        return self._token(self._current())

    def _token(self, owner: Optional[_Owner]) -> str:
        return self._newest(owner).token()

    @property
    def remaining(self) -> float:
        """Seconds the calling thread's newest lease is certainly still ours
        on the local monotonic clock (0.0 when lost, expired or not held)."""
        return self._remaining(self._current())

    def _remaining(self, owner: Optional[_Owner]) -> float:
        slot = owner.newest() if owner is not None else None
        if slot is None:
            return 0.0
        return slot.remaining()

    @property
    def name(self) -> str:
        """The lock's name."""
        return self._name

    @property
    def reentrant(self) -> bool:
        """Whether this Lock may nest."""
        return self._reentrant

    @property
    def thread_local(self) -> bool:
        """Whether holds belong to the acquiring thread (see the class docs)."""
        return self._thread_local

    @property
    def holds(self) -> int:
        """How many holds the calling thread has (the Lock, with
        ``thread_local=False``); at most 1 for a plain lock."""
        owner = self._current()
        return 0 if owner is None else owner.count()

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.Lock cannot be pickled or copied: "
            "make a new Client and Lock in the other process"
        )

    def __repr__(self) -> str:
        kind = "reentrant " if self._reentrant else ""
        return f"<latchkey.Lock {kind}{self._name!r} holds={self.holds}>"
