"""A C handle shared by Python calls and freed only when nothing uses it.

The Python object that owns a handle (a Client, a Lock) is not what the
garbage collector's finalizer sees: the finalizer gets this small object,
which refers to no Python object of the user's, so it can be collected in
any order. Closing (by the user, the finalizer or a fork) marks the handle
unusable under a mutex first; the C handle is freed by whoever is last:
the closer if no call is running, otherwise the last running call. A call
that comes later (say, from the ``__del__`` of another object of the same
reference cycle) gets a clear Python error instead of a freed pointer.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Optional

from .errors import LatchkeyError

__all__ = ["SharedHandle"]


class SharedHandle:
    """One C handle (an int), its use count, and how to free it."""

    __slots__ = ("_mutex", "_value", "_free", "_users", "_closed", "_why", "pid", "__weakref__")

    def __init__(self, value: int, free: Callable[[int], None]) -> None:
        self._mutex = threading.Lock()
        self._value: Optional[int] = value
        self._free = free
        self._users = 0
        self._closed = False
        self._why = ""
        self.pid = os.getpid()

    @property
    def closed(self) -> bool:
        """Whether the handle may no longer be used."""
        return self._closed

    def enter(self, what: str) -> int:
        """Marks a call as using the handle and returns it; raises
        :class:`LatchkeyError` (saying why) once it is closed."""
        with self._mutex:
            if self._closed or self._value is None:
                raise LatchkeyError(f"the latchkey.{what} {self._why or 'is closed'}")
            self._users += 1
            return self._value

    def exit(self) -> None:
        """Ends a call started with :meth:`enter`; the last call after a
        close frees the handle."""
        with self._mutex:
            self._users -= 1
            if not self._closed:
                return  # the usual case, without a call
            value = self._take_if_idle()
        if value is not None:
            self._free(value)

    def close(self, why: str = "is closed") -> None:
        """Marks the handle unusable; frees it now if no call uses it."""
        with self._mutex:
            if not self._closed:
                self._closed = True
                self._why = why
            value = self._take_if_idle()
        if value is not None:
            self._free(value)

    def disown(self, why: str) -> None:
        """In a forked child: unusable, and never freed here (the parent's
        handle stays the parent's). Called with no other thread running."""
        self._mutex = threading.Lock()
        self._closed = True
        self._why = why
        self._value = None
        self._users = 0

    def _take_if_idle(self) -> Optional[int]:
        # With the mutex held: the value to free, once, when closed and idle.
        if self._closed and self._users == 0 and self._value is not None:
            value = self._value
            self._value = None
            return value
        return None
