"""asyncio support for the read-write lock: :class:`AsyncRwLock` and the
:class:`AsyncRwHold` it returns, on :mod:`latchkey.aio`'s machinery (each
wait on a thread of its own through ``aio._acquire_hold``, cancellation
giving back what was granted; the hold's calls through ``aio._AsyncHold``).
Re-exported by :mod:`latchkey.aio`."""

from __future__ import annotations

from typing import Callable, NoReturn, Optional

from . import _args
from .aio import _acquire_hold, _AsyncHold
from .cancel import Cancel
from .client import Client
from .lock import LostLease, _Slot
from .rwlock import Mode, RwHold, RwLock

__all__ = ["AsyncRwLock", "AsyncRwHold"]


class AsyncRwHold(_AsyncHold):
    """An :class:`RwHold` for asyncio, from :class:`AsyncRwLock`: ``release``,
    ``extend``, ``owned`` and ``async with`` (which releases on exit) are
    awaitable, ``check``, ``lost``, ``mode``, ``fencing_token``, ``token``
    and ``remaining`` plain. A cancelled ``release()`` finishes the release,
    then raises :class:`asyncio.CancelledError`, as
    :meth:`AsyncLock.release` does."""

    __slots__ = ()

    def __init__(self, hold: RwHold) -> None:
        super().__init__(hold)

    async def release(self) -> None:
        """Ends the hold; see :meth:`RwHold.release`."""
        await self._end()

    @property
    def mode(self) -> Mode:
        """``"read"`` or ``"write"``."""
        return self.rwhold.mode

    @property
    def name(self) -> str:
        """The read-write lock's name."""
        return self.rwhold.name

    @property
    def rwhold(self) -> RwHold:
        """The underlying (sync) :class:`RwHold`."""
        hold = self._hold
        assert isinstance(hold, RwHold)
        return hold


class AsyncRwLock:
    """A named read-write lock for asyncio: :class:`RwLock`'s calls as
    coroutines, which never block the event loop. Made by
    :meth:`Client.async_rwlock` (or ``AsyncRwLock(client, name, ...)``)
    with :class:`RwLock`'s options.

    ``await read(timeout=None)`` and ``await write(timeout=None)`` return
    an :class:`AsyncRwHold`; cancelling the task ends the wait at once and
    gives back a hold granted meanwhile before
    :class:`asyncio.CancelledError` is raised (as :meth:`AsyncLock.acquire`).

    >>> config = client.async_rwlock("config")  # doctest: +SKIP
    >>> async with await config.read() as hold:
    ...     await use(hold.fencing_token)
    """

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        renew_every: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        on_lost: Optional[Callable[[LostLease], object]] = None,
    ) -> None:
        self._rwlock = RwLock(
            client,
            name,
            ttl=ttl,
            auto_renew=auto_renew,
            renew_every=renew_every,
            retry_jitter=retry_jitter,
            on_lost=on_lost,
        )

    async def read(self, timeout: Optional[float] = None) -> AsyncRwHold:
        """Takes a read lease, waiting on a thread of its own at most
        ``timeout`` seconds (None or -1: for ever; 0: one attempt); the
        errors are :meth:`RwLock.read`'s."""
        hold = await self._take("read", True, timeout)
        assert hold is not None
        return hold

    async def write(self, timeout: Optional[float] = None) -> AsyncRwHold:
        """Takes the lock for writing, waiting as :meth:`read` does; the
        errors are :meth:`RwLock.write`'s."""
        hold = await self._take("write", True, timeout)
        assert hold is not None
        return hold

    async def try_read(self) -> Optional[AsyncRwHold]:
        """One attempt: a reader's :class:`AsyncRwHold`, or None."""
        return await self._take("read", False, None)

    async def try_write(self) -> Optional[AsyncRwHold]:
        """One attempt: the writer's :class:`AsyncRwHold`, or None."""
        return await self._take("write", False, None)

    async def _take(
        self, mode: Mode, blocking: bool, timeout: Optional[float]
    ) -> Optional[AsyncRwHold]:
        if blocking:
            _args.wait_ms(timeout)  # a bad timeout raises here, not on the thread
        rwlock = self._rwlock
        slot = _Slot()

        def take(cancel: Cancel) -> bool:
            return rwlock._take_side(slot, mode, blocking, timeout, cancel)

        if not await _acquire_hold(rwlock, slot, take):
            return None
        return AsyncRwHold(RwHold(rwlock, slot, mode))

    @property
    def name(self) -> str:
        """The read-write lock's name."""
        return self._rwlock.name

    @property
    def holds(self) -> int:
        """Holds taken through it, in this process, neither released nor lost."""
        return self._rwlock.holds

    @property
    def rwlock(self) -> RwLock:
        """The underlying (sync) :class:`RwLock`."""
        return self._rwlock

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.AsyncRwLock cannot be pickled or copied: "
            "make a new Client and AsyncRwLock in the other process"
        )

    def __repr__(self) -> str:
        return f"<latchkey.AsyncRwLock {self.name!r} holds={self.holds}>"
