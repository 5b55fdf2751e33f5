"""Cancelling waits: the public :class:`Cancel` object, and the registry of
every wait in progress, which interpreter exit (and Ctrl-C that ends the
main thread) cancels so that no thread is left waiting for a lock while the
process goes away.

Each blocking acquire owns one C ``latchkey_cancel`` handle for the length
of its wait (a :class:`Wait`). Triggering and freeing it happen under the
wait's mutex, so a trigger from another thread never touches a freed
handle.
"""

from __future__ import annotations

import threading
import time
import weakref
from ctypes import c_void_p
from typing import Optional

from ._lib import lib, raise_error

__all__ = ["Cancel"]

_trigger = lib.latchkey_cancel_trigger
_cancel_free = lib.latchkey_cancel_free

_REGISTRY_MUTEX = threading.Lock()
# Weak: a Wait that nothing references any more (its acquire was cut short
# before it started waiting) is no wait in progress.
_WAITS: "weakref.WeakSet[Wait]" = weakref.WeakSet()
_IDLE = threading.Condition(_REGISTRY_MUTEX)
_shutting_down = False


class Cancel:
    """Cancels waiting acquires from any thread: a lock's, a semaphore's,
    a multi-lock's, a read-write lock's ``read``/``write``, an election's
    ``campaign`` and ``observe``.

    Pass it as ``lock.acquire(cancel=c)`` (or ``Lock(..., cancel=c)`` is not
    needed: any number of acquires, on any threads, may share one); then
    ``c.cancel()`` makes every wait that uses it end at once with
    :class:`Cancelled`, now and later, until :meth:`reset`. A lock that a
    cancelled wait acquired at the same moment is given back.

    >>> stop = latchkey.Cancel()  # doctest: +SKIP
    >>> threading.Thread(target=lambda: lock.acquire(cancel=stop)).start()
    >>> stop.cancel()             # the worker's acquire raises Cancelled
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cancelled = False
        self._waits: set[Wait] = set()

    def cancel(self) -> None:
        """Cancels every wait that uses this object, and later ones."""
        with self._mutex:
            self._cancelled = True
            waits = list(self._waits)
        for wait in waits:
            wait.trigger()

    def reset(self) -> None:
        """Lets later waits that use this object wait again."""
        with self._mutex:
            self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called (and not :meth:`reset`)."""
        return self._cancelled

    def _add(self, wait: "Wait") -> bool:
        with self._mutex:
            self._waits.add(wait)
            return self._cancelled

    def _remove(self, wait: "Wait") -> None:
        with self._mutex:
            self._waits.discard(wait)

    def __repr__(self) -> str:
        return f"<latchkey.Cancel cancelled={self._cancelled}>"


class Wait:
    """One blocking acquire's C cancel handle, registered so that
    :class:`Cancel`, Ctrl-C and interpreter exit can end the wait. It has
    `users` users (the waiting thread, and the main thread that hands its
    wait to a helper thread); the handle is freed when the last one calls
    :meth:`close`, so each of them may trigger it until then."""

    __slots__ = ("handle", "_mutex", "_user", "_users", "__weakref__")

    def __init__(self, user: Optional[Cancel], users: int = 1) -> None:
        handle = c_void_p()
        err = c_void_p()
        status = lib.latchkey_cancel_new(handle, err)
        if status:
            raise_error(status, err)
        self.handle: Optional[int] = handle.value
        self._mutex = threading.Lock()
        self._user = user
        self._users = users
        cancelled = False
        with _REGISTRY_MUTEX:
            _WAITS.add(self)
            cancelled = _shutting_down
        if user is not None and user._add(self):
            cancelled = True
        if cancelled:
            self.trigger()

    def trigger(self) -> None:
        """Ends the wait (now, or at once when it starts)."""
        with self._mutex:
            if self.handle is not None:
                _trigger(self.handle, None)

    def close(self) -> None:
        """One user is done; the last one unregisters and frees the handle."""
        with self._mutex:
            self._users -= 1
            if self._users > 0:
                return
            handle, self.handle = self.handle, None
        if self._user is not None:
            self._user._remove(self)
        with _REGISTRY_MUTEX:
            _WAITS.discard(self)
            _IDLE.notify_all()
        if handle is not None:
            _cancel_free(handle)

    def __del__(self) -> None:
        # Unreachable, so no thread can be waiting on it: a handle left by
        # an acquire cut short before its wait started is freed here.
        try:
            handle, self.handle = self.handle, None
            if handle is not None:
                _cancel_free(handle)
        except BaseException:  # pragma: no cover - interpreter shutting down
            pass


def trigger_handle(handle: int) -> None:
    """Triggers a C cancel handle that the caller keeps alive (a user of
    its Wait that has not closed it yet)."""
    _trigger(handle, None)


_exiting = False


def park_if_exiting() -> None:
    """A wait cancelled by interpreter exit does not return to its (daemon)
    thread, which ends with the interpreter: raising there would only print
    a traceback into the exit, and the lock it waited for was not taken."""
    if _exiting:
        threading.Event().wait()


def shutting_down() -> bool:
    """Whether new waits are refused (the interpreter is exiting)."""
    return _shutting_down


def refuse_new_waits(exiting: bool = False) -> None:
    """Cancels every wait in progress and every later one (`exiting`: at
    interpreter exit, see park_if_exiting)."""
    global _shutting_down, _exiting
    with _REGISTRY_MUTEX:
        _shutting_down = True
        _exiting = _exiting or exiting
        waits = list(_WAITS)
    for wait in waits:
        wait.trigger()


def wait_for_waits_to_end(limit: float) -> bool:
    """Waits (at most `limit` seconds) until no wait is in progress."""
    deadline = time.monotonic() + limit
    with _IDLE:
        while len(_WAITS):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # A collected Wait leaves the set without a notification.
            _IDLE.wait(min(left, 0.05))
    return True


def _after_fork_in_child() -> None:
    # The parent's waits are the parent's threads'; none runs here.
    global _REGISTRY_MUTEX, _IDLE
    _REGISTRY_MUTEX = threading.Lock()
    _IDLE = threading.Condition(_REGISTRY_MUTEX)
    _WAITS.clear()
