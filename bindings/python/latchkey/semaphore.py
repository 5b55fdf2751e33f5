"""The Semaphore: a named counting semaphore whose permits are leases, and
the :class:`Permit` each acquisition returns.

It is the library's semaphore (``latchkey_semaphore_*``): every
acquisition takes one or more permits as one lease of its own, renewed
while held, reported lost as a lock's lease is, and given back by Redis
when its holder dies and the lease ends. Each hold is an ordinary C guard,
so a :class:`Permit` offers what a Lock's hold offers (``release``,
``extend``, ``check``, ``owned``, ``lost``, ``fencing_token``, ``token``,
``remaining``) through the same per-guard calls (``lock._Slot``).

How holds are kept is the Lock's, through what a Semaphore shares with an
Election (``_hold.HoldSource`` and ``_hold.OwnHold``; see _hold.py).
"""

from __future__ import annotations

import threading
from ctypes import c_bool, c_uint32, c_void_p
from types import TracebackType
from typing import Callable, NoReturn, Optional

from . import _args
from ._hold import HoldSource, OwnHold
from ._lib import lib, raise_error
from .cancel import Cancel
from .client import Client
from .errors import LatchkeyError
from .lock import LostLease, _lock_options, _Slot

__all__ = ["Semaphore", "Permit", "MAX_PERMITS"]

MAX_PERMITS = 1_000_000
"""The most permits a semaphore may have (the library's limit)."""

_U32_MAX = 2**32 - 1

_sem_acquire = lib.latchkey_semaphore_acquire
_sem_try_acquire = lib.latchkey_semaphore_try_acquire
_sem_free = lib.latchkey_semaphore_free


def _free_semaphore(handle: int) -> None:
    _sem_free(handle)


class Permit(OwnHold):
    """One acquisition of permits of a :class:`Semaphore`: its own lease,
    owner token and fencing token. Returned by :meth:`Semaphore.acquire`,
    :meth:`Semaphore.try_acquire` and ``with semaphore as permit``.

    Everything done through a Permit concerns that acquisition only. It
    is a context manager that releases on exit (raising :class:`NotHeld`
    if the lease was lost meanwhile). A Permit may be used from any thread.
    Dropping it does not release it: a permit is held (and renewed) until
    :meth:`release`, its loss, its client's close, or interpreter exit.
    ``extend``, ``check``, ``owned``, ``lost``, ``fencing_token``,
    ``token`` (its permits, ``:``, and 32 hex digits: ``"2:9f0c..."``) and
    ``remaining`` concern this hold's lease.

    >>> with pool.acquire(2) as permit:  # doctest: +SKIP
    ...     client.fenced_write("report", permit.fencing_token, b"...")
    ...     permit.check()
    """

    __slots__ = ("_permits",)

    _noun = "permit"

    def __init__(self, semaphore: "Semaphore", slot: _Slot, permits: int) -> None:
        super().__init__(semaphore, slot)
        self._permits = permits

    def release(self) -> None:
        """Gives the permits back. Raises :class:`NotHeld` if the lease had
        been lost meanwhile (expired, or taken away by
        :meth:`Semaphore.force_release_all`) or the permit was released
        already; Redis failures raise too (the lease then runs out at its
        ttl). After any outcome the permit counts as released."""
        self._release()

    @property
    def permits(self) -> int:
        """How many permits this hold took."""
        return self._permits

    @property
    def name(self) -> str:
        """The semaphore's name."""
        return self.semaphore.name

    @property
    def semaphore(self) -> "Semaphore":
        """The Semaphore it was acquired through."""
        source = self._source
        assert isinstance(source, Semaphore)
        return source

    def __repr__(self) -> str:
        state = "released" if self._slot.released else "acquired"
        return f"<latchkey.Permit {self.name!r} permits={self._permits} {state}>"


class Semaphore(HoldSource):
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

    _kind = "Semaphore"

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
        self._open(
            client,
            options,
            lambda c, o, out, err: lib.latchkey_semaphore_new(c, name_b, size, o, out, err),
            _free_semaphore,
        )
        # Each thread's permits taken by `with semaphore`, newest last.
        self._local = threading.local()

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
            self._acquire_permits(slot, permits, True, timeout, cancel)
            return Permit(self, slot, permits)
        except BaseException:
            self._abandon(slot)
            raise

    def try_acquire(self, permits: int = 1) -> Optional[Permit]:
        """One attempt, no waiting: the :class:`Permit`, or None if fewer
        than ``permits`` permits are free."""
        slot = _Slot()
        try:
            if not self._acquire_permits(slot, permits, False, None, None):
                return None
            return Permit(self, slot, permits)
        except BaseException:
            self._abandon(slot)
            raise

    def _acquire_permits(
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
        guard = slot.guard

        def attempt(handle: int, ms: int, cancel_handle: Optional[int], err: c_void_p) -> int:
            return int(_sem_acquire(handle, permits, ms, cancel_handle, guard, err))

        if not blocking:
            return self._acquire_into(
                slot, None, cancel, attempt, lambda h, err: _sem_try_acquire(h, permits, guard, err)
            )
        return self._acquire_into(slot, _args.wait_ms(timeout), cancel, attempt)

    def _describe(self) -> str:
        return f"permits of semaphore {self._name!r}"

    # --- `with semaphore as permit` -----------------------------------------------

    def __enter__(self) -> Permit:
        entered: Optional[list[Permit]] = getattr(self._local, "entered", None)
        if entered is None:
            entered = self._local.entered = []
        slot = _Slot()
        try:
            self._acquire_permits(slot, 1, True, None, None)
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

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.Semaphore cannot be pickled or copied: "
            "make a new Client and Semaphore in the other process"
        )

    def __repr__(self) -> str:
        return f"<latchkey.Semaphore {self._name!r} size={self._size} holds={self.holds}>"
