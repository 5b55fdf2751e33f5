"""The Semaphore: a named counting semaphore whose permits are leases, and
the :class:`Permit` each acquisition returns.

It is the library's semaphore (``latchkey_semaphore_*``): every
acquisition takes one or more permits as one lease of its own, renewed
while held, reported lost as a lock's lease is, and given back by Redis
when its holder dies and the lease ends. Each hold is an ordinary C guard,
so a :class:`Permit` offers what a Lock's hold offers (``release``,
``extend``, ``check``, ``owned``, ``lost``, ``fencing_token``, ``token``,
``remaining``) through the same per-guard calls (``lock._Slot``).

How holds are kept is the Lock's (see lock.py and README.md, "Threads,
garbage collection, signals, fork and exit"):

- Every acquisition is recorded in a ``_Slot`` *before* the C call that
  fills it in, so a signal at any point leaves a recorded hold or nothing.
- A Semaphore has one owner of holds (``lock._Owner``); while it has slots
  it is in ``lock._HELD``, so a held permit stays reachable (and renewed)
  even when the program dropped its Permit and its Semaphore: the garbage
  collector never releases or frees a hold. Interpreter exit gives back
  what is still held; a forked child never touches the parent's permits.
- Records of permits that ended (released, lost, or released by the
  client's close) are dropped at the next acquire through the Semaphore;
  a Permit the program keeps still reports how it ended.
"""

from __future__ import annotations

import threading
import time
import weakref
from ctypes import c_bool, c_uint32, c_void_p
from types import TracebackType
from typing import Callable, NoReturn, Optional

from . import _args
from . import cancel as _cancel
from . import lock as _lock
from ._handle import SharedHandle
from ._lib import CANCELLED, OK, TIMEOUT, discard_error, error_is_busy, lib, raise_error
from .cancel import Cancel, Wait
from .client import Client
from .errors import Cancelled, LatchkeyError
from .lock import (
    _HANDLES,
    LostLease,
    _forget,
    _lock_options,
    _Owner,
    _record,
    _Slot,
    _wait_on_helper,
)

__all__ = ["Semaphore", "Permit", "MAX_PERMITS"]

MAX_PERMITS = 1_000_000
"""The most permits a semaphore may have (the library's limit)."""

_U32_MAX = 2**32 - 1

_sem_acquire = lib.latchkey_semaphore_acquire
_sem_try_acquire = lib.latchkey_semaphore_try_acquire
_sem_free = lib.latchkey_semaphore_free
_release = lib.latchkey_guard_release
_guard_check = lib.latchkey_guard_check
_get_ident = threading.get_ident
_main_thread = threading.main_thread
_monotonic = time.monotonic


def _free_semaphore(handle: int) -> None:
    _sem_free(handle)


class Permit:
    """One acquisition of permits of a :class:`Semaphore`: its own lease,
    owner token and fencing token. Returned by :meth:`Semaphore.acquire`,
    :meth:`Semaphore.try_acquire` and ``with semaphore as permit``.

    Everything done through a Permit concerns that acquisition only. It
    is a context manager that releases on exit (raising :class:`NotHeld`
    if the lease was lost meanwhile). A Permit may be used from any thread.
    Dropping it does not release it: a permit is held (and renewed) until
    :meth:`release`, its loss, its client's close, or interpreter exit.

    >>> with pool.acquire(2) as permit:  # doctest: +SKIP
    ...     client.fenced_write("report", permit.fencing_token, b"...")
    ...     permit.check()
    """

    __slots__ = ("_semaphore", "_slot", "_permits", "__weakref__")

    def __init__(self, semaphore: "Semaphore", slot: _Slot, permits: int) -> None:
        self._semaphore = semaphore
        self._slot = slot
        self._permits = permits

    def _live_slot(self) -> _Slot:
        """The slot, unless it was inherited through fork (the child never
        uses the parent's holds)."""
        slot = self._slot
        if slot.pid != _lock._PID or not slot.guard.value:
            raise LatchkeyError(
                f"this permit of semaphore {self._semaphore.name!r} was acquired in process "
                f"{slot.pid}, before a fork; a forked child must open its own Client"
            )
        return slot

    def release(self) -> None:
        """Gives the permits back. Raises :class:`NotHeld` if the lease had
        been lost meanwhile (expired, or taken away by
        :meth:`Semaphore.force_release_all`) or the permit was released
        already; Redis failures raise too (the lease then runs out at its
        ttl). After any outcome the permit counts as released."""
        slot = self._live_slot()
        err = c_void_p()
        try:
            status = int(_release(slot.guard, err))
            slot.released = True
        finally:
            _forget(self._semaphore._owner, slot)
        if status:
            raise_error(status, err)

    def extend(self, ttl: float, replace_ttl: bool = True) -> None:
        """Extends the lease, if it is still this permit's: as
        :meth:`Lock.extend` (``replace_ttl=True``: at least ``ttl`` seconds
        from now; ``False``: ``ttl`` seconds more than what is left).
        :class:`NotHeld` if it was lost or released."""
        _args.positive_ms(ttl, "ttl")
        self._live_slot().extend(ttl, replace_ttl)

    def check(self) -> None:
        """Raises :class:`LostError` (with the reason) if the lease was
        lost, :class:`NotHeld` once released. Local state only."""
        self._live_slot().check()

    def owned(self) -> bool:
        """Whether Redis confirms this very hold (one round trip)."""
        return self._live_slot().confirm()

    @property
    def lost(self) -> bool:
        """Whether the lease was lost (local state; ``check()`` says why)."""
        return self._live_slot().is_lost()

    @property
    def fencing_token(self) -> int:
        """This hold's fencing token: strictly greater than every token
        issued before for this semaphore."""
        return self._live_slot().fencing_token()

    @property
    def token(self) -> str:
        """This hold's owner token as stored in Redis: its permits, ``:``,
        and 32 random hex digits (``"2:9f0c..."``)."""
        return self._live_slot().token()

    @property
    def remaining(self) -> float:
        """Seconds the lease is certainly still ours on the local monotonic
        clock (0.0 when lost, expired or released)."""
        return self._live_slot().remaining()

    @property
    def permits(self) -> int:
        """How many permits this hold took."""
        return self._permits

    @property
    def name(self) -> str:
        """The semaphore's name."""
        return self._semaphore.name

    @property
    def semaphore(self) -> "Semaphore":
        """The Semaphore it was acquired through."""
        return self._semaphore

    def __enter__(self) -> "Permit":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    def __reduce__(self) -> NoReturn:
        raise TypeError("a latchkey.Permit cannot be pickled or copied")

    def __repr__(self) -> str:
        state = "released" if self._slot.released else "acquired"
        return f"<latchkey.Permit {self.name!r} permits={self._permits} {state}>"


class Semaphore:
    """A named distributed semaphore of ``size`` permits, shared by every
    process (in any language) that uses the name. Make it with
    :meth:`Client.semaphore`.

    Each acquisition takes ``permits`` permits (default 1) as one lease of
    its own and returns a :class:`Permit`; the lease is renewed while held
    (unless ``auto_renew=False``), its loss is reported (``on_lost``,
    :meth:`Permit.check`), and a holder that dies gives its permits back
    when its lease ends. Waiters are woken by releases (no polling).

    ``with semaphore as permit:`` takes one permit, waiting for ever (or
    until Ctrl-C), and releases it on exit; a Semaphore shared by threads
    keeps each thread's ``with`` permits apart.

    Options are :class:`Lock`'s, less ``reentrant``, ``fair``,
    ``thread_local`` and ``blocking_timeout``. The size is the handle's:
    every attempt counts the permits in use against it, so handles of one
    name should agree on it. Semaphores are refused on Redlock clients (a
    majority per hold does not bound the holders): making one raises
    :class:`InvalidArgument` there.

    A Semaphore is thread-safe; blocking calls release the GIL; a wait can
    be cancelled with a :class:`Cancel` and, on the main thread, by Ctrl-C.

    >>> pool = client.semaphore("db-connections", 3, ttl=10)  # doctest: +SKIP
    >>> with pool.acquire() as permit:
    ...     use_a_connection(permit.fencing_token)
    """

    def __init__(
        self,
        client: Client,
        name: str,
        size: int,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        on_lost: Optional[Callable[[LostLease], object]] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(f"client must be a latchkey.Client, not {type(client).__name__}")
        name_b = _args.text(name, "name")
        size = _args.count(size, "size", maximum=_U32_MAX)
        ttl_ms = _args.positive_ms(ttl, "ttl")
        if on_lost is not None and not callable(on_lost):
            raise TypeError(f"on_lost must be callable, not {type(on_lost).__name__}")
        jitter_ms = (
            None if retry_jitter is None else _args.non_negative_ms(retry_jitter, "retry_jitter")
        )
        renew_ms = _args.optional_positive_ms(renew_every, "renew_every")
        self._client = client
        self._name = name
        self._size = size

        options = _lock_options(ttl_ms, auto_renew, None, None, jitter_ms, renew_ms, on_lost)
        handle = c_void_p()
        err = c_void_p()
        try:
            client_handle = client._enter()
            try:
                status = lib.latchkey_semaphore_new(
                    client_handle, name_b, size, options, handle, err
                )
            finally:
                client._exit()
        finally:
            # The semaphore keeps what it needs of them.
            lib.latchkey_lock_options_free(options)
        if status:
            raise_error(status, err)
        if not handle.value:  # pragma: no cover - the ABI promises a handle
            raise LatchkeyError("latchkey_semaphore_new succeeded without a semaphore handle")
        self._handle = SharedHandle(handle.value, _free_semaphore)
        _HANDLES.add(self._handle)
        self._owner = _Owner(None)
        # Each thread's permits taken by `with semaphore`, newest last.
        self._local = threading.local()
        # The finalizer sees only the SharedHandle, never this object. The
        # C semaphore's guards stay valid after it is freed.
        why = "is closed (garbage-collected)"
        self._finalizer = weakref.finalize(self, self._handle.close, why)
        self._finalizer.atexit = False  # see lock._at_exit

    # --- acquiring ----------------------------------------------------------------

    def acquire(
        self,
        permits: int = 1,
        timeout: Optional[float] = None,
        *,
        cancel: Optional[Cancel] = None,
    ) -> Permit:
        """Takes ``permits`` permits and returns their :class:`Permit`,
        waiting without polling (woken by releases) at most ``timeout``
        seconds (None or -1: for ever; 0: one attempt). Raises
        :class:`LockTimeout` if too few came free in time,
        :class:`Cancelled` if ``cancel`` was cancelled (from any thread),
        :class:`InvalidArgument` for 0 permits or more than the size (and
        takes nothing), KeyboardInterrupt for Ctrl-C during a wait on the
        main thread; an interrupted or cancelled acquire leaves nothing
        taken (a grant that raced with it is given back)."""
        slot = _Slot()
        try:
            self._acquire_into(slot, permits, True, timeout, cancel)
            return Permit(self, slot, permits)
        except BaseException:
            self._abandon(slot)
            raise

    def try_acquire(self, permits: int = 1) -> Optional[Permit]:
        """One attempt, no waiting: the :class:`Permit`, or None if fewer
        than ``permits`` permits are free."""
        slot = _Slot()
        try:
            if not self._acquire_into(slot, permits, False, None, None):
                return None
            return Permit(self, slot, permits)
        except BaseException:
            self._abandon(slot)
            raise

    def _abandon(self, slot: _Slot) -> None:
        # Gives back what an interrupted acquire took (see _Slot.abandoned).
        slot.abandoned = True
        _forget(self._owner, slot)
        slot.give_back()

    def _acquire_into(
        self,
        slot: _Slot,
        permits: int,
        blocking: bool,
        timeout: Optional[float],
        cancel: Optional[Cancel],
    ) -> bool:
        """Takes permits into `slot`: True when taken; False when one
        attempt (not blocking) found too few free; raises otherwise."""
        permits = _args.count(permits, "permits", maximum=_U32_MAX)
        ms = _args.wait_ms(timeout) if blocking else 0
        if cancel is not None and not isinstance(cancel, Cancel):
            raise TypeError(f"cancel must be a latchkey.Cancel, not {type(cancel).__name__}")
        owner = self._owner
        err = c_void_p()
        # Nothing between enter() and the try (see Lock._acquire_into).
        handle = self._handle.enter("Semaphore")
        try:
            self._drop_ended()
            _record(owner, self, slot)
            status = self._take(handle, permits, blocking, ms, slot, err, cancel)
            if status == OK:
                return True
            _forget(owner, slot)
        finally:
            self._handle.exit()
        if status == TIMEOUT and not blocking:
            discard_error(err)
            return False
        raise_error(status, err)

    def _take(
        self,
        handle: int,
        permits: int,
        blocking: bool,
        ms: int,
        slot: _Slot,
        err: c_void_p,
        cancel: Optional[Cancel],
    ) -> int:
        """One C acquire (or a first attempt and then a cancellable wait)
        that writes the guard straight into `slot` (as Lock._take)."""
        if not blocking:
            return int(_sem_try_acquire(handle, permits, slot.guard, err))
        if (cancel is not None and cancel.cancelled) or _cancel.shutting_down():
            raise Cancelled(f"acquiring permits of semaphore {self._name!r}: cancelled")
        started = _monotonic() if ms > 0 else 0.0
        status = int(_sem_acquire(handle, permits, 0, None, slot.guard, err))
        if status == OK or ms == 0 or (status != TIMEOUT and not error_is_busy(err)):
            return status
        discard_error(err)
        if ms > 0:
            ms = max(1, ms - int((_monotonic() - started) * 1000.0))

        def call(cancel_handle: Optional[int]) -> int:
            return int(_sem_acquire(handle, permits, ms, cancel_handle, slot.guard, err))

        if _get_ident() == _main_thread().ident:
            what = f"permits of semaphore {self._name!r}"
            wait = Wait(cancel, users=2)
            return _wait_on_helper(what, "Semaphore", self._handle, call, slot, err, wait)
        wait = Wait(cancel)
        try:
            status = call(wait.handle)
        finally:
            wait.close()
        if status == CANCELLED:
            _cancel.park_if_exiting()
        return status

    def _drop_ended(self) -> None:
        """Forgets the records of permits that hold nothing any more
        (released, lost, or released by a close), so a long-running loop
        that drops lost Permits does not pile them up. Records still being
        filled by an acquire are left alone."""
        owner = self._owner
        for slot in list(owner.slots):
            guard = slot.guard.value
            if guard and (slot.released or int(_guard_check(guard, None)) != OK):
                _forget(owner, slot)

    # --- `with semaphore as permit` -----------------------------------------------

    def __enter__(self) -> Permit:
        entered: Optional[list[Permit]] = getattr(self._local, "entered", None)
        if entered is None:
            entered = self._local.entered = []
        slot = _Slot()
        try:
            self._acquire_into(slot, 1, True, None, None)
            permit = Permit(self, slot, 1)
            entered.append(permit)
        except BaseException:
            # Also a Ctrl-C that lands after the grant, before the block:
            # __exit__ will not run, so give the permit back here.
            self._abandon(slot)
            raise
        return permit

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        entered: Optional[list[Permit]] = getattr(self._local, "entered", None)
        if not entered:  # pragma: no cover - __exit__ without __enter__
            raise LatchkeyError(f"semaphore {self._name!r}: __exit__ without __enter__")
        entered.pop().release()

    # --- the semaphore ------------------------------------------------------------

    def available(self) -> int:
        """The permits free now, as this handle counts them: its size less
        the permits in use (0 when more are in use). One round trip."""
        out = c_uint32()
        err = c_void_p()
        handle = self._handle.enter("Semaphore")
        try:
            status = lib.latchkey_semaphore_available(handle, out, err)
        finally:
            self._handle.exit()
        if status:
            raise_error(status, err)
        return int(out.value)

    def force_release_all(self) -> bool:
        """For operators: takes every permit away from whoever holds it
        (any process) and wakes the waiters; whether any was held. The
        holders find their leases lost at their next renewal (``on_lost``
        runs, :meth:`Permit.check` raises :class:`LostError`)."""
        out = c_bool()
        err = c_void_p()
        handle = self._handle.enter("Semaphore")
        try:
            status = lib.latchkey_semaphore_force_release_all(handle, out, err)
        finally:
            self._handle.exit()
        if status:
            raise_error(status, err)
        return bool(out.value)

    @property
    def name(self) -> str:
        """The semaphore's name."""
        return self._name

    @property
    def size(self) -> int:
        """The permits in all, as this handle counts them."""
        return self._size

    @property
    def holds(self) -> int:
        """How many holds taken through this Semaphore, in this process,
        are neither released nor lost."""
        return self._owner.count()

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.Semaphore cannot be pickled or copied: "
            "make a new Client and Semaphore in the other process"
        )

    def __repr__(self) -> str:
        return f"<latchkey.Semaphore {self._name!r} size={self._size} holds={self.holds}>"
