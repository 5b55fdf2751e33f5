"""asyncio support for multi-locks: :class:`AsyncMultiLock` and
:class:`AsyncMultiGuard`, the awaitable twins of :class:`MultiLock` and
:class:`MultiGuard`, shaped like :class:`AsyncSemaphore` (see
:mod:`latchkey.aio` for how waits run off the event loop and how a
cancelled task gives back what it was granted)."""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType
from typing import Callable, Iterable, NoReturn, Optional

from . import _args
from .aio import _Call
from .cancel import Cancel
from .client import Client
from .errors import NotHeld
from .lock import LostLease
from .multi import MultiGuard, MultiLock, _MultiSlot

__all__ = ["AsyncMultiLock", "AsyncMultiGuard"]


class AsyncMultiGuard:
    """A :class:`MultiGuard` for asyncio, from :class:`AsyncMultiLock`:
    ``release`` and ``async with`` are awaitable, the calls that read local
    state plain (``check``, ``lost``, ``names``, ``fencing_tokens``). A
    cancelled ``release()`` finishes the release, then raises
    :class:`asyncio.CancelledError`, as :meth:`AsyncLock.release` does."""

    __slots__ = ("_guard",)

    def __init__(self, guard: MultiGuard) -> None:
        self._guard = guard

    async def release(self) -> None:
        """Releases every lock; see :meth:`MultiGuard.release`."""
        await _Call(self._guard.release).outcome()

    def check(self) -> None:
        """See :meth:`MultiGuard.check` (local state only)."""
        self._guard.check()

    @property
    def lost(self) -> bool:
        """Whether any lease was lost (local state)."""
        return self._guard.lost

    @property
    def names(self) -> list[str]:
        """The locks' names, in the order they were taken."""
        return self._guard.names

    @property
    def fencing_tokens(self) -> list[int]:
        """The fencing token of each lock, in :attr:`names` order."""
        return self._guard.fencing_tokens

    @property
    def guard(self) -> MultiGuard:
        """The underlying (sync) :class:`MultiGuard`."""
        return self._guard

    async def __aenter__(self) -> "AsyncMultiGuard":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.release()

    def __reduce__(self) -> NoReturn:
        raise TypeError("a latchkey.AsyncMultiGuard cannot be pickled or copied")

    def __repr__(self) -> str:
        return repr(self._guard).replace("<latchkey.MultiGuard", "<latchkey.AsyncMultiGuard", 1)


class AsyncMultiLock:
    """Several named locks for asyncio, taken all together or not at all:
    :class:`MultiLock`'s calls as coroutines, which never block the event
    loop. Made by :meth:`Client.async_multi_lock` (or
    ``AsyncMultiLock(client, names, ...)``) with :class:`MultiLock`'s
    options.

    ``await acquire(timeout=None)`` returns an :class:`AsyncMultiGuard`;
    cancelling the task ends the wait at once and gives back the locks
    granted meanwhile before :class:`asyncio.CancelledError` is raised.
    ``async with multi_lock as held:`` takes every lock and releases them
    on exit (each ``async with`` releases its own guard, whichever task
    runs it).

    >>> transfer = client.async_multi_lock(["account:7", "account:3"])  # doctest: +SKIP
    >>> async with await transfer.acquire(timeout=5) as both:
    ...     await move_money(both.fencing_tokens)
    """

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
        self._multi = MultiLock(
            client,
            names,
            ttl=ttl,
            auto_renew=auto_renew,
            fair=fair,
            on_lost=on_lost,
            retry_jitter=retry_jitter,
            renew_every=renew_every,
        )
        # The guards of `async with`, newest last, per task.
        self._entered: weakref.WeakKeyDictionary[asyncio.Task[object], list[AsyncMultiGuard]] = (
            weakref.WeakKeyDictionary()
        )

    async def acquire(self, timeout: Optional[float] = None) -> AsyncMultiGuard:
        """Takes every lock, waiting on a thread of its own at most
        ``timeout`` seconds in all (None or -1: for ever; 0: one attempt
        per lock); the errors are :meth:`MultiLock.acquire`'s."""
        guard = await self._acquire(True, timeout)
        assert guard is not None
        return guard

    async def try_acquire(self) -> Optional[AsyncMultiGuard]:
        """One attempt per lock: the :class:`AsyncMultiGuard`, or None
        (holding none) if any is held by someone else."""
        return await self._acquire(False, None)

    async def _acquire(self, blocking: bool, timeout: Optional[float]) -> Optional[AsyncMultiGuard]:
        if blocking:
            _args.wait_ms(timeout)  # a bad timeout raises here, not on the thread
        multi = self._multi
        slot = _MultiSlot()
        cancel = Cancel()

        def give_back() -> None:
            multi._abandon(slot)

        def run() -> bool:
            try:
                return multi._acquire_all(slot, blocking, timeout, cancel)
            except BaseException:
                give_back()
                raise
            finally:
                # Abandoned on the loop while the grant was on its way.
                if slot.abandoned:
                    slot.give_back()

        call = _Call(run, undelivered=give_back)
        try:
            cancelled = await call.finish(on_cancel=cancel.cancel)
        except BaseException:
            # The coroutine is being closed (see AsyncLock._acquire).
            cancel.cancel()
            give_back()
            raise
        if cancelled is not None:
            if slot.guard.value and not slot.released:
                await _Call(give_back).finish()
            else:
                give_back()
            raise cancelled
        if not call.result():
            return None
        return AsyncMultiGuard(MultiGuard(multi, slot))

    async def __aenter__(self) -> AsyncMultiGuard:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("an AsyncMultiLock is entered from within an asyncio task")
        guard = await self.acquire()
        self._entered.setdefault(task, []).append(guard)
        return guard

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        task = asyncio.current_task()
        entered = self._entered.get(task) if task is not None else None
        if not entered:  # pragma: no cover - __aexit__ without __aenter__
            raise NotHeld(f"multi-lock {self.names!r}: this task entered no guard")
        await entered.pop().release()

    @property
    def names(self) -> list[str]:
        """The names, in the order the locks are taken."""
        return self._multi.names

    @property
    def holds(self) -> int:
        """Guards taken through it, in this process, neither released nor lost."""
        return self._multi.holds

    @property
    def multi_lock(self) -> MultiLock:
        """The underlying (sync) :class:`MultiLock`."""
        return self._multi

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.AsyncMultiLock cannot be pickled or copied: "
            "make a new Client and AsyncMultiLock in the other process"
        )

    def __repr__(self) -> str:
        return f"<latchkey.AsyncMultiLock {self.names!r} holds={self.holds}>"
