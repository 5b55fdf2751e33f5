"""The MultiLock: several named locks taken all together or not at all,
and the :class:`MultiGuard` each acquisition returns.

It is the library's multi-lock (``latchkey_multi_lock_*``): the locks are
ordinary locks (a :class:`Lock` of the same name, in any process or
language, excludes the holder and is excluded by it), taken one after the
other in the order of their names' bytes, whatever order they were named
in, so multi-locks of overlapping sets never deadlock; an acquisition that
cannot take them all gives back what it took. Losing any one lease loses
the whole.

A MultiLock is a ``_hold.HoldSource`` (as a Semaphore and an Election
are), so how holds are kept is theirs (see _hold.py, lock.py and
README.md, "Threads, garbage collection, signals, fork and exit"), with
one C multi-guard per acquisition in a ``_MultiSlot`` (a ``lock._Slot``
whose calls are the multi-guard's):

- Every acquisition is recorded *before* the C call that fills it in.
- A MultiLock has one owner of holds (``lock._Owner``), in ``lock._HELD``
  while it has slots: a held MultiGuard stays reachable (and renewed) even
  when the program dropped it and its MultiLock. Interpreter exit gives
  back what is still held; a forked child never touches the parent's.
- Records of guards that ended (released, lost, or released by the
  client's close) are dropped at the next acquire through the MultiLock.
  A lost guard whose MultiGuard the program dropped too is then freed,
  which releases the locks of it that were still held (the library's
  ``latchkey_multi_guard_free``): a lost multi-lock is never used again.
"""

from __future__ import annotations

import threading
from ctypes import c_char_p, c_size_t, c_uint64, c_void_p
from types import TracebackType
from typing import Callable, Iterable, NoReturn, Optional

from . import _args
from . import lock as _lock
from ._hold import HoldSource
from ._lib import LOST, NOT_HELD, OK, lib, raise_error
from .cancel import Cancel
from .client import Client
from .errors import LatchkeyError
from .lock import _DEAD, _LIVE, _PENDING, LostLease, _forget, _lock_options, _Slot

__all__ = ["MultiLock", "MultiGuard", "MAX_MULTI_LOCK_NAMES"]

MAX_MULTI_LOCK_NAMES = 1024
"""The most locks one multi-lock may take (the library's limit)."""

_multi_acquire = lib.latchkey_multi_lock_acquire
_multi_try_acquire = lib.latchkey_multi_lock_try_acquire
_multi_free = lib.latchkey_multi_lock_free
_mg_release = lib.latchkey_multi_guard_release
_mg_check = lib.latchkey_multi_guard_check
_mg_free = lib.latchkey_multi_guard_free


def _free_multi(handle: int) -> None:
    _multi_free(handle)


class _MultiSlot(_Slot):
    """One acquisition of a multi-lock: a ``_Slot`` whose ``guard`` is a C
    ``latchkey_multi_guard`` (written by the acquire call itself), so that
    lock.py's records, exit and fork handling work on it unchanged."""

    __slots__ = ("was_lost",)

    def __init__(self) -> None:
        super().__init__()
        # Whether a lease was found lost before the release (which makes
        # the guard's own check say NOT_HELD from then on).
        self.was_lost = False

    def state(self, ask: bool = True) -> int:
        guard = self.guard.value
        if not guard:
            return _DEAD if self.released or self.abandoned else _PENDING
        if self.released or (ask and _mg_check(guard, None) == NOT_HELD):
            return _DEAD
        return _LIVE

    def give_back(self) -> None:
        guard = self.guard.value
        if guard and not self.released:
            self.released = True
            _mg_release(guard, None)

    def check(self) -> None:
        err = c_void_p()
        status = int(_mg_check(self.guard, err))
        if status:
            raise_error(status, err)

    def is_lost(self) -> bool:
        if self.was_lost:
            return True
        status = int(_mg_check(self.guard, None))
        return status == LOST

    def ended(self) -> bool:
        """Whether it holds nothing any more, or holds a lost whole."""
        guard = self.guard.value
        return bool(guard) and (self.released or int(_mg_check(guard, None)) != OK)

    def __del__(self) -> None:
        # As _Slot.__del__, with the multi-guard's free (which releases a
        # guard that was not released: only a lost one gets here so).
        try:
            guard = self.guard.value
            if guard and self.pid == _lock._PID:
                self.guard.value = None
                _mg_free(guard)
        except BaseException:  # pragma: no cover - interpreter shutting down
            pass


class MultiGuard:
    """Proof that every lock of a :class:`MultiLock` is held. Returned by
    :meth:`MultiLock.acquire`, :meth:`MultiLock.try_acquire` and ``with
    multi_lock as held``.

    A context manager that releases every lock on exit (raising
    :class:`NotHeld` if a lease was lost meanwhile). It may be used from
    any thread. Dropping it does not release it: the locks are held (and
    renewed) until :meth:`release`, a loss, the client's close, or
    interpreter exit.

    >>> with client.multi_lock(["account:7", "account:3"]) as both:  # doctest: +SKIP
    ...     print(both.names, both.fencing_tokens)
    ...     both.check()
    """

    __slots__ = ("_multi", "_slot", "_tokens", "__weakref__")

    def __init__(self, multi: "MultiLock", slot: _MultiSlot) -> None:
        self._multi = multi
        self._slot = slot
        self._tokens = _fencing_tokens(slot.guard)

    def _live_slot(self) -> _MultiSlot:
        """The slot, unless it was inherited through fork."""
        slot = self._slot
        if slot.pid != _lock._PID or not slot.guard.value:
            raise LatchkeyError(
                f"this guard of multi-lock {self._multi.names!r} was acquired in process "
                f"{slot.pid}, before a fork; a forked child must open its own Client"
            )
        return slot

    def release(self) -> None:
        """Releases every lock, the last taken first. Raises
        :class:`NotHeld` if a lease had been lost (every other lock is
        released all the same) or it was released already; Redis failures
        raise too (those leases then run out at their ttl). After any
        outcome the guard counts as released."""
        slot = self._live_slot()
        err = c_void_p()
        try:
            if int(_mg_check(slot.guard, None)) == LOST:
                slot.was_lost = True
            status = int(_mg_release(slot.guard, err))
            slot.released = True
        finally:
            _forget(self._multi._owner, slot)
        if status:
            raise_error(status, err)

    def check(self) -> None:
        """Raises :class:`LostError` (naming the lock) once any lease was
        lost, :class:`NotHeld` once released or ended by the client's
        close. Local state only."""
        self._live_slot().check()

    @property
    def lost(self) -> bool:
        """Whether any lease was lost (local state; :meth:`check` says
        which). Stays True after a release that found it lost."""
        return self._live_slot().is_lost()

    @property
    def names(self) -> list[str]:
        """The locks' names, in the order they were taken (sorted by their
        UTF-8 bytes, each once)."""
        return list(self._multi.names)

    @property
    def fencing_tokens(self) -> list[int]:
        """The fencing token of each lock, in :attr:`names` order (each
        strictly greater than every token issued before for its name)."""
        return list(self._tokens)

    @property
    def multi_lock(self) -> "MultiLock":
        """The MultiLock it was acquired through."""
        return self._multi

    def __enter__(self) -> "MultiGuard":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()

    def __reduce__(self) -> NoReturn:
        raise TypeError("a latchkey.MultiGuard cannot be pickled or copied")

    def __repr__(self) -> str:
        state = "released" if self._slot.released else "acquired"
        return f"<latchkey.MultiGuard {self._multi.names!r} {state}>"


def _fencing_tokens(guard: c_void_p) -> list[int]:
    count = c_size_t()
    err = c_void_p()
    status = lib.latchkey_multi_guard_count(guard, count, err)
    if status:
        raise_error(status, err)
    tokens = []
    out = c_uint64()
    for index in range(count.value):
        status = lib.latchkey_multi_guard_fencing_token(guard, index, out, err)
        if status:
            raise_error(status, err)
        tokens.append(int(out.value))
    return tokens


class MultiLock(HoldSource):
    """Several named locks, taken all together or not at all. Make it with
    :meth:`Client.multi_lock`.

    ``names`` is any iterable of str (not a str itself): each a lock name,
    1 to 1024 of them as given (a duplicate counts toward the limit but is
    taken once). The locks are taken in the
    order of the names' UTF-8 bytes (:attr:`names`), whatever order they
    were given in, so multi-locks of overlapping sets never deadlock; an
    acquisition that cannot take every lock in time gives back those it
    took and holds none. Each lock is an ordinary lock, with the options
    of :class:`Lock` (less ``reentrant``, ``thread_local`` and
    ``blocking_timeout``): ``on_lost`` is called for each lease that is
    lost, with that lock's name.

    ``with multi_lock as held:`` takes every lock, waiting for ever (or
    until Ctrl-C), and releases them on exit; a MultiLock shared by
    threads keeps each thread's ``with`` guards apart.

    A MultiLock is thread-safe; blocking calls release the GIL; a wait can
    be cancelled with a :class:`Cancel` and, on the main thread, by Ctrl-C.

    >>> transfer = client.multi_lock(["account:7", "account:3"])  # doctest: +SKIP
    >>> with transfer.acquire(timeout=5) as both:
    ...     move_money(both.fencing_tokens)
    """

    _kind = "MultiLock"
    _what = "multi-lock"

    def __init__(
        self,
        client: Client,
        names: Iterable[str],
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        fair: bool = False,
        on_lost: Optional[Callable[[LostLease], object]] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(f"client must be a latchkey.Client, not {type(client).__name__}")
        encoded = _args.text_list(names, "names")
        ttl_ms = _args.positive_ms(ttl, "ttl")
        if on_lost is not None and not callable(on_lost):
            raise TypeError(f"on_lost must be callable, not {type(on_lost).__name__}")
        jitter_ms = (
            None if retry_jitter is None else _args.non_negative_ms(retry_jitter, "retry_jitter")
        )
        renew_ms = _args.optional_positive_ms(renew_every, "renew_every")
        self._client = client
        # The library's order: by UTF-8 bytes (which is code point order),
        # each once. The C ABI does not give the names back.
        self._names = tuple(sorted({b.decode("utf-8") for b in encoded}))

        self._name = ", ".join(self._names)
        options = _lock_options(ttl_ms, auto_renew, None, fair, jitter_ms, renew_ms, on_lost)
        array = (c_char_p * len(encoded))(*encoded)
        count = len(encoded)
        self._open(
            client,
            options,
            lambda c, o, out, err: lib.latchkey_multi_lock_new(c, array, count, o, out, err),
            _free_multi,
        )
        # Each thread's guards taken by `with multi_lock`, newest last.
        self._local = threading.local()

    # --- acquiring ----------------------------------------------------------------

    def acquire(
        self, timeout: Optional[float] = None, *, cancel: Optional[Cancel] = None
    ) -> MultiGuard:
        """Takes every lock and returns their :class:`MultiGuard`, waiting
        without polling at most ``timeout`` seconds in all (None or -1: for
        ever; 0: one attempt per lock). Raises :class:`LockTimeout` if a
        lock stayed held (holding none), :class:`Cancelled` if ``cancel``
        was cancelled (from any thread), KeyboardInterrupt for Ctrl-C
        during a wait on the main thread; an interrupted or cancelled
        acquire leaves nothing taken."""
        slot = _MultiSlot()
        try:
            self._acquire_all(slot, True, timeout, cancel)
            return MultiGuard(self, slot)
        except BaseException:
            self._abandon(slot)
            raise

    def try_acquire(self) -> Optional[MultiGuard]:
        """One attempt per lock, no waiting: the :class:`MultiGuard`, or
        None (holding none) if any lock is held by someone else."""
        slot = _MultiSlot()
        try:
            if not self._acquire_all(slot, False, None, None):
                return None
            return MultiGuard(self, slot)
        except BaseException:
            self._abandon(slot)
            raise

    def _acquire_all(
        self,
        slot: _MultiSlot,
        blocking: bool,
        timeout: Optional[float],
        cancel: Optional[Cancel],
    ) -> bool:
        """Takes every lock into `slot`: True when taken; False when one
        attempt (not blocking) found one held; raises otherwise."""
        guard = slot.guard

        def attempt(handle: int, ms: int, cancel_handle: Optional[int], err: c_void_p) -> int:
            return int(_multi_acquire(handle, ms, cancel_handle, guard, err))

        if not blocking:
            return self._acquire_into(
                slot, None, cancel, attempt, lambda h, err: _multi_try_acquire(h, guard, err)
            )
        return self._acquire_into(slot, _args.wait_ms(timeout), cancel, attempt)

    def _describe(self) -> str:
        return f"multi-lock {self._names!r}"

    def _drop_ended(self) -> None:
        """As HoldSource._drop_ended, with the multi-guard's check: forgets
        the records of guards that hold nothing any more or only a lost
        whole; records still being filled by an acquire are left alone."""
        owner = self._owner
        for slot in list(owner.slots):
            if isinstance(slot, _MultiSlot) and slot.ended():
                _forget(owner, slot)

    # --- `with multi_lock as held` ------------------------------------------------

    def __enter__(self) -> MultiGuard:
        entered: Optional[list[MultiGuard]] = getattr(self._local, "entered", None)
        if entered is None:
            entered = self._local.entered = []
        slot = _MultiSlot()
        try:
            self._acquire_all(slot, True, None, None)
            held = MultiGuard(self, slot)
            entered.append(held)
        except BaseException:
            # Also a Ctrl-C that lands after the grant, before the block.
            self._abandon(slot)
            raise
        return held

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        entered: Optional[list[MultiGuard]] = getattr(self._local, "entered", None)
        if not entered:  # pragma: no cover - __exit__ without __enter__
            raise LatchkeyError(f"multi-lock {self._names!r}: __exit__ without __enter__")
        entered.pop().release()

    # --- the multi-lock -----------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The names, in the order the locks are taken (sorted by their
        UTF-8 bytes, each once)."""
        return list(self._names)

    @property
    def holds(self) -> int:
        """How many guards taken through this MultiLock, in this process,
        are neither released nor lost."""
        return sum(
            1
            for slot in list(self._owner.slots)
            if slot.guard.value and not slot.released and int(_mg_check(slot.guard, None)) == OK
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.MultiLock cannot be pickled or copied: "
            "make a new Client and MultiLock in the other process"
        )

    def __repr__(self) -> str:
        return f"<latchkey.MultiLock {self._names!r} holds={self.holds}>"
