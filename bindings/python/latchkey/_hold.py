"""What a Semaphore and an Election share: handles whose every acquisition
is a hold of its own (a C guard in a ``lock._Slot``), handed to the program
as an object (a :class:`Permit`, a :class:`Leadership`).

How holds are kept is the Lock's (see lock.py and README.md, "Threads,
garbage collection, signals, fork and exit"):

- Every acquisition is recorded in a ``_Slot`` *before* the C call that
  fills it in, so a signal at any point leaves a recorded hold or nothing.
- A :class:`HoldSource` has one owner of holds (``lock._Owner``); while it
  has slots it is in ``lock._HELD``, so a live hold stays reachable (and
  renewed) even when the program dropped its hold object and its source:
  the garbage collector never releases or frees a hold. Interpreter exit
  gives back what is still held; a forked child never touches the
  parent's holds.
- Records of holds that ended (released, lost, or released by the
  client's close) are dropped at the next acquire through the source; a
  hold object the program keeps still reports how it ended.
"""

from __future__ import annotations

import threading
import time
import weakref
from ctypes import c_void_p
from types import TracebackType
from typing import Callable, NoReturn, Optional, TypeVar

from . import _args
from . import cancel as _cancel
from . import lock as _lock
from ._handle import SharedHandle
from ._lib import CANCELLED, OK, TIMEOUT, discard_error, error_is_busy, lib, raise_error
from .cancel import Cancel, Wait
from .client import Client
from .errors import Cancelled, LatchkeyError
from .lock import _HANDLES, _forget, _give_back_late, _Owner, _record, _Slot, _wait_on_helper

__all__ = ["HoldSource", "OwnHold"]

_H = TypeVar("_H", bound="OwnHold")

_release = lib.latchkey_guard_release
_guard_check = lib.latchkey_guard_check
_get_ident = threading.get_ident
_main_thread = threading.main_thread
_monotonic = time.monotonic

Attempt = Callable[[int, int, Optional[int], c_void_p], int]
"""A blocking C acquire: (handle, timeout_ms, cancel_handle, err) ->
status, writing the guard into the slot it was made for."""

Once = Callable[[int, c_void_p], int]
"""One C attempt without waiting: (handle, err) -> status."""

NewHandle = Callable[[int, c_void_p, c_void_p, c_void_p], int]
"""A C constructor: (client, options, handle_out, err) -> status."""


class HoldSource:
    """The part of a Semaphore or an Election that makes holds: its C
    handle (freed when the object is collected; its guards stay valid),
    its owner of holds, and the acquire that records a slot first."""

    _kind = "HoldSource"
    """The class's name, for messages ("the latchkey.Semaphore is closed")."""

    _what = ""
    """What it is in other messages, when not ``_kind`` in lower case."""

    _name: str
    _handle: SharedHandle
    _owner: _Owner

    def _open(
        self, client: Client, options: c_void_p, new: NewHandle, free: Callable[[int], None]
    ) -> None:
        """Makes the C handle with `new` on `client`, and frees `options`
        (the handle keeps what it needs of them)."""
        handle = c_void_p()
        err = c_void_p()
        try:
            client_handle = client._enter()
            try:
                status = int(new(client_handle, options, handle, err))
            finally:
                client._exit()
        finally:
            lib.latchkey_lock_options_free(options)
        if status:
            raise_error(status, err)
        if not handle.value:  # pragma: no cover - the ABI promises a handle
            raise LatchkeyError(f"making a latchkey.{self._kind} succeeded without a handle")
        self._handle = SharedHandle(handle.value, free)
        _HANDLES.add(self._handle)
        self._owner = _Owner(None)
        # The finalizer sees only the SharedHandle, never this object. The
        # C handle's guards stay valid after it is freed.
        why = "is closed (garbage-collected)"
        finalizer = weakref.finalize(self, self._handle.close, why)
        finalizer.atexit = False  # see lock._at_exit

    def _describe(self) -> str:  # pragma: no cover - overridden
        """What an acquire waits for, for messages ("permits of semaphore 'x'")."""
        raise NotImplementedError

    def _abandon(self, slot: _Slot) -> None:
        """Gives back what an interrupted acquire took (see _Slot.abandoned)."""
        slot.abandoned = True
        _forget(self._owner, slot)
        slot.give_back()

    def _drop_ended(self) -> None:
        """Forgets the records of holds that hold nothing any more
        (released, lost, or released by a close), so a long-running loop
        that drops lost holds does not pile them up. Records still being
        filled by an acquire are left alone."""
        owner = self._owner
        for slot in list(owner.slots):
            guard = slot.guard.value
            if guard and (slot.released or int(_guard_check(guard, None)) != OK):
                _forget(owner, slot)

    def _acquire_into(
        self,
        slot: _Slot,
        ms: Optional[int],
        cancel: Optional[Cancel],
        attempt: Attempt,
        once: Optional[Once] = None,
    ) -> bool:
        """Acquires into `slot`: True when acquired; False when a single
        attempt (`once`, with `ms` None) found it taken; raises
        otherwise. A wait (`ms`: its milliseconds, -1 for ever) makes a
        first attempt with `attempt`, then waits with it cancellably."""
        if cancel is not None and not isinstance(cancel, Cancel):
            raise TypeError(f"cancel must be a latchkey.Cancel, not {type(cancel).__name__}")
        owner = self._owner
        err = c_void_p()
        # Nothing between enter() and the try (see Lock._acquire_into).
        handle = self._handle.enter(self._kind)
        try:
            self._drop_ended()
            _record(owner, self, slot)
            if once is not None:
                status = int(once(handle, err))
            else:
                assert ms is not None
                status = self._take(handle, ms, slot, err, cancel, attempt)
            if status == OK:
                return True
            _forget(owner, slot)
        finally:
            self._handle.exit()
        if status == TIMEOUT and once is not None:
            discard_error(err)
            return False
        raise_error(status, err)

    def _take(
        self,
        handle: int,
        ms: int,
        slot: _Slot,
        err: c_void_p,
        cancel: Optional[Cancel],
        attempt: Attempt,
    ) -> int:
        """A first attempt, then a cancellable wait (as Lock._take), each a
        C acquire that writes the guard straight into `slot`."""
        if (cancel is not None and cancel.cancelled) or _cancel.shutting_down():
            raise Cancelled(f"acquiring {self._describe()}: cancelled")
        started = _monotonic() if ms > 0 else 0.0
        status = int(attempt(handle, 0, None, err))
        if status == OK or ms == 0 or (status != TIMEOUT and not error_is_busy(err)):
            return status
        discard_error(err)
        if ms > 0:
            ms = max(1, ms - int((_monotonic() - started) * 1000.0))

        def call(cancel_handle: Optional[int]) -> int:
            return int(attempt(handle, ms, cancel_handle, err))

        if _get_ident() == _main_thread().ident:
            wait = Wait(cancel, users=2)

            def late() -> None:
                _give_back_late(slot, err)

            return _wait_on_helper(self._describe(), self._kind, self._handle, call, late, wait)
        wait = Wait(cancel)
        try:
            status = call(wait.handle)
        finally:
            wait.close()
        if status == CANCELLED:
            _cancel.park_if_exiting()
        return status

    @property
    def holds(self) -> int:
        """How many holds taken through it, in this process, are neither
        released nor lost."""
        return self._owner.count()


class OwnHold:
    """One acquisition through a :class:`HoldSource`: its own lease, owner
    token and fencing token, through the per-guard calls of ``lock._Slot``.
    A context manager that ends the hold on exit. Dropping it does not end
    it: a hold lasts until it is released, lost, its client is closed, or
    the interpreter exits."""

    __slots__ = ("_source", "_slot", "__weakref__")

    _noun = "hold"

    def __init__(self, source: HoldSource, slot: _Slot) -> None:
        self._source = source
        self._slot = slot

    def _live_slot(self) -> _Slot:
        """The slot, unless it was inherited through fork (the child never
        uses the parent's holds)."""
        slot = self._slot
        if slot.pid != _lock._PID or not slot.guard.value:
            raise LatchkeyError(
                f"this {self._noun} of {self._source._what or self._source._kind.lower()} "
                f"{self._source._name!r} "
                f"was acquired in process "
                f"{slot.pid}, before a fork; a forked child must open its own Client"
            )
        return slot

    def _release(self) -> None:
        """Ends the hold in Redis (NotHeld if it had been lost or ended
        already); after any outcome it counts as released."""
        slot = self._live_slot()
        err = c_void_p()
        try:
            status = int(_release(slot.guard, err))
            slot.released = True
        finally:
            _forget(self._source._owner, slot)
        if status:
            raise_error(status, err)

    def extend(self, ttl: float, replace_ttl: bool = True) -> None:
        """Extends the lease, if it is still this hold's: as
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
        issued before for this name."""
        return self._live_slot().fencing_token()

    @property
    def token(self) -> str:
        """This hold's owner token as stored in Redis."""
        return self._live_slot().token()

    @property
    def remaining(self) -> float:
        """Seconds the lease is certainly still ours on the local monotonic
        clock (0.0 when lost, expired or released)."""
        return self._live_slot().remaining()

    def _state(self) -> str:
        return "released" if self._slot.released else "held"

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._release()

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"a latchkey.{type(self).__name__} cannot be pickled or copied")
