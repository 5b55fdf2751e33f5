"""asyncio support: :class:`AsyncLock`, the awaitable twin of :class:`Lock`.

The shape of the API: ``client.async_lock(name, ...)`` (or
``AsyncLock(client, name, ...)``) takes the same options as
``client.lock(name, ...)`` and offers the same calls, awaitable where the
sync one waits for Redis (``acquire``, ``release``, ``extend``,
``owned``, ``locked``, ``async with``) and plain where it only reads local
state (``check``, ``fencing_token``, ``token``, ``remaining``, ``holds``).
One :class:`Client` serves both kinds of lock, so there is no separate
async client: a program that mixes threads and tasks shares one pool of
connections and one renewal thread::

    import asyncio, latchkey

    async def main() -> None:
        with latchkey.Client("redis://127.0.0.1:6379") as client:
            lock = client.async_lock("nightly-report", ttl=10)
            async with lock:                       # waits without blocking the loop
                await run_report(lock.fencing_token)
            if await lock.acquire(timeout=2.5):    # False if someone else kept it
                try:
                    ...
                finally:
                    await lock.release()

    asyncio.run(main())

Where it differs: ``thread_local`` becomes ``task_local``, and its default
is False, so a hold belongs to the AsyncLock (as with ``asyncio.Lock`` and
redis-py's asyncio lock), not to the task that acquired it. asyncio moves
coroutines between tasks where threads never move calls:
``asyncio.wait_for(lock.acquire(), t)`` runs the acquire in a task of its
own before Python 3.12, as ``gather`` and ``create_task`` do, and a hold
owned by that short-lived task could not be released by its caller.
``task_local=True`` makes holds per task (and a reentrant lock nest per
task) for code that awaits ``acquire`` directly.

How it never blocks the event loop: every call that talks to Redis runs on
a thread of its own (not the loop's default executor, whose few workers a
crowd of waiters would fill, leaving no worker for the release they wait
for); the loop awaits a future that the thread completes. A wait costs one
parked thread until it ends.

Cancellation (``task.cancel()``, ``asyncio.timeout``, ``asyncio.wait_for``,
Ctrl-C under ``asyncio.run``):

- A cancelled ``acquire()`` (or ``async with`` entry) ends its wait at once
  through a :class:`Cancel` of its own, waits for the waiting thread to
  return, gives back a lock granted meanwhile (also one granted in the very
  moment of the cancel, or granted before the task could resume), and only
  then raises :class:`asyncio.CancelledError`. So once the cancelled task
  is done, it holds nothing and Redis holds nothing for it.
- A cancelled ``release()`` (also the one ``async with`` runs on exit)
  finishes the release first, then raises :class:`asyncio.CancelledError`.
  The other awaitable calls too finish the call in flight before they raise
  it (a Redis command that does not answer is bounded by the client's
  command timeout).
- A second cancellation during that clean-up does not cut it short; the
  task still ends with one :class:`asyncio.CancelledError`.
"""

from __future__ import annotations

import _thread
import asyncio
import weakref
from types import TracebackType
from typing import AsyncIterator, Callable, Generic, NoReturn, Optional, TypeVar

from . import _args
from ._hold import HoldSource, OwnHold
from .cancel import Cancel
from .client import Client
from .election import Election, Leader, Leadership, Value, _value_bytes
from .errors import NotHeld
from .lock import Lock, LostLease, _Owner, _Slot
from .semaphore import Permit, Semaphore

__all__ = ["AsyncLock", "AsyncSemaphore", "AsyncPermit", "AsyncElection", "AsyncLeadership"]

_T = TypeVar("_T")

_start_new_thread = _thread.start_new_thread


class _Call(Generic[_T]):
    """One blocking call on a thread of its own, whose outcome the event
    loop awaits. The outcome is kept here, not in an asyncio future, so a
    cancellation of the awaiting task can never discard it: the task finds
    out what the call did (say, that it was granted the lock) whatever
    happens to it. `undelivered` runs on the thread if the loop is closed
    before the outcome can be delivered (nobody will ever read it)."""

    __slots__ = ("_loop", "_done", "_fn", "_value", "_error", "_undelivered")

    def __init__(
        self, fn: Callable[[], _T], undelivered: Optional[Callable[[], None]] = None
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._fn = fn
        self._value: Optional[_T] = None
        self._error: Optional[BaseException] = None
        self._undelivered = undelivered
        _start_new_thread(self._run, ())

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as error:
            self._error = error
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed
            if self._undelivered is not None:
                self._undelivered()

    def _wake(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    async def finish(
        self, on_cancel: Optional[Callable[[], None]] = None
    ) -> Optional[asyncio.CancelledError]:
        """Waits until the call has returned, whatever happens to the
        awaiting task. A cancellation does not end the wait: the first one
        calls `on_cancel` (to make the call return sooner) and is returned
        (None if there was none) for the caller to raise once it has
        cleaned up."""
        cancelled: Optional[asyncio.CancelledError] = None
        while True:
            try:
                # shield: cancelling the task cancels the shield, never
                # _done, which only the thread completes.
                await asyncio.shield(self._done)
            except asyncio.CancelledError as error:
                if cancelled is None:
                    cancelled = error
                    if on_cancel is not None:
                        on_cancel()
            if self._done.done():
                return cancelled

    def result(self) -> _T:
        """The call's return value, or raises its exception."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._value  # type: ignore[return-value]

    async def outcome(self) -> _T:
        """finish(), then raises a cancellation that arrived meanwhile
        (with the call's own exception, if any, as its context), else
        returns the call's result."""
        cancelled = await self.finish()
        if cancelled is not None:
            try:
                self.result()
            except BaseException:
                raise cancelled from None
            raise cancelled
        return self.result()


async def _acquire_hold(source: HoldSource, slot: _Slot, take: Callable[[Cancel], bool]) -> bool:
    """Runs `take(cancel)`, an acquire into `slot` through a Semaphore or
    an Election, on a thread of its own: its outcome (False: a single
    attempt found it taken). Cancelling the task ends the wait at once
    (through `cancel`) and gives back what was granted meanwhile before
    :class:`asyncio.CancelledError` is raised (as AsyncLock._acquire)."""
    cancel = Cancel()

    def give_back() -> None:
        source._abandon(slot)

    def run() -> bool:
        try:
            return take(cancel)
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
    return call.result()


class AsyncLock:
    """A named distributed lock for asyncio: :class:`Lock`'s calls as
    coroutines, which never block the event loop.

    Made by :meth:`Client.async_lock` (or ``AsyncLock(client, name, ...)``)
    with :class:`Lock`'s options, except that ``thread_local`` is
    ``task_local``:

    - ``task_local=False`` (the default): the holds belong to the
      AsyncLock, and any task acts on its newest hold (acquire in one task,
      release in another; ``asyncio.wait_for(lock.acquire(), t)`` works on
      every Python). Tasks that share one plain AsyncLock still exclude
      each other (an acquire while it is held waits for the release), but
      any of them may release it, as with ``asyncio.Lock``; a reentrant
      one nests across tasks.
    - ``task_local=True``: a hold belongs to the asyncio task that
      acquired it. :meth:`release`, :meth:`extend`, :meth:`check`,
      :meth:`owned`, :attr:`fencing_token`, :attr:`token`,
      :attr:`remaining` and :attr:`holds` act on the calling task's newest
      hold; a task that holds nothing gets :class:`NotHeld` (or False / 0).
      A reentrant AsyncLock nests per task; another task waits like any
      other owner. Await ``acquire`` in the task that will release
      (not through ``gather``, ``create_task``, or ``wait_for`` before
      Python 3.12, which run it in a task of their own).

    A hold whose task ended without releasing it stays held (and renewed)
    until the client is closed or the interpreter exits, like a thread's.
    Cancellation gives back what a cancelled acquire took and lets a
    release finish (see the module documentation).

    >>> lock = client.async_lock("orders:42", ttl=10)  # doctest: +SKIP
    >>> async with lock:
    ...     await write(lock.fencing_token)
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
        task_local: bool = False,
        on_lost: Optional[Callable[[LostLease], object]] = None,
        blocking_timeout: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> None:
        # The holds of the sync Lock are never its threads': each call
        # names its owner (the task's, or the Lock's shared one).
        self._lock = Lock(
            client,
            name,
            ttl=ttl,
            auto_renew=auto_renew,
            reentrant=reentrant,
            fair=fair,
            thread_local=False,
            on_lost=on_lost,
            blocking_timeout=blocking_timeout,
            retry_jitter=retry_jitter,
            renew_every=renew_every,
        )
        self._task_local = bool(task_local)
        self._blocking_timeout = blocking_timeout
        # A task's owner goes with the task, unless it holds something
        # (then lock._HELD keeps it, as it keeps a thread's).
        self._owners: weakref.WeakKeyDictionary[asyncio.Task[object], _Owner] = (
            weakref.WeakKeyDictionary()
        )

    # --- owners -------------------------------------------------------------------

    def _owner(self) -> _Owner:
        """The owner of the holds (the AsyncLock's, or with ``task_local``
        the calling task's, made on first use)."""
        if not self._task_local:
            assert self._lock._shared is not None
            return self._lock._shared
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("an AsyncLock is acquired from within an asyncio task")
        owner = self._owners.get(task)
        if owner is None:
            owner = self._lock._make_owner()
            self._owners[task] = owner
        return owner

    def _current(self) -> Optional[_Owner]:
        """The owner of the holds if there is one (never makes one)."""
        if not self._task_local:
            return self._lock._shared
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop
            return None
        return None if task is None else self._owners.get(task)

    def _holding(self) -> _Owner:
        """The owner of the holds, or NotHeld if it holds nothing."""
        owner = self._current()
        if owner is None or owner.newest() is None:
            whom = "this task" if self._task_local else "this AsyncLock"
            raise NotHeld(f"lock {self.name!r} is not held by {whom}")
        return owner

    # --- acquiring ----------------------------------------------------------------

    async def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Acquires the lock: True when acquired, False if it stayed held by
        another owner; the arguments are :meth:`Lock.acquire`'s
        (``blocking=False``: one attempt; ``timeout``: seconds, None or -1
        for ever). The wait runs on a thread of its own. Cancelling the
        task ends the wait at once and gives back a lock granted
        meanwhile before :class:`asyncio.CancelledError` is raised.

        >>> if await lock.acquire(timeout=2.5):  # doctest: +SKIP
        ...     try:
        ...         await work()
        ...     finally:
        ...         await lock.release()
        """
        return await self._acquire(blocking, timeout, False)

    async def _acquire(self, blocking: bool, timeout: Optional[float], raise_timeout: bool) -> bool:
        if not blocking:
            if timeout is not None:
                raise ValueError("can't specify a timeout for a non-blocking call")
        else:
            _args.wait_ms(timeout)  # a bad timeout raises here, not on the thread
        lock = self._lock
        owner = self._owner()
        slot = _Slot()
        cancel = Cancel()

        def give_back() -> None:
            lock._abandon(slot, owner)

        def run() -> bool:
            try:
                return lock._acquire_into(slot, blocking, timeout, raise_timeout, cancel, owner)
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
            # Not a cancellation (finish() absorbs those): the coroutine is
            # being closed, and cannot wait. End the wait; the grant, now
            # or when it comes, is given back by whichever side sees it
            # last.
            cancel.cancel()
            give_back()
            raise
        if cancelled is not None:
            # Give back a grant before the task ends: on a thread when it
            # takes a Redis round trip (an abandoned acquire that took
            # nothing only drops its record).
            if slot.guard.value and not slot.released:
                await _Call(give_back).finish()
            else:
                give_back()
            raise cancelled
        return call.result()

    async def __aenter__(self) -> "AsyncLock":
        await self._acquire(True, self._blocking_timeout, True)
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.release()

    async def release(self) -> None:
        """Releases the newest hold (the calling task's with ``task_local``);
        :class:`NotHeld` if it holds none or the lease was lost meanwhile,
        as :meth:`Lock.release`. A cancellation that arrives meanwhile
        lets the release finish, then raises
        :class:`asyncio.CancelledError`."""
        owner = self._holding()
        lock = self._lock
        await _Call(lambda: lock._release(owner)).outcome()

    # --- the current hold ---------------------------------------------------------

    async def extend(self, ttl: float, replace_ttl: bool = True) -> None:
        """Extends the newest lease (the calling task's with ``task_local``);
        see :meth:`Lock.extend`."""
        _args.positive_ms(ttl, "ttl")
        owner = self._holding()
        lock = self._lock
        await _Call(lambda: lock._extend(owner, ttl, replace_ttl)).outcome()

    async def owned(self) -> bool:
        """Whether this AsyncLock (the calling task, with ``task_local``)
        holds the lock, confirmed by Redis (one round trip)."""
        owner = self._current()
        if owner is None:
            return False
        lock = self._lock
        return await _Call(lambda: lock._owned(owner)).outcome()

    async def locked(self) -> bool:
        """Whether anyone holds the lock (one round trip)."""
        return await _Call(self._lock.locked).outcome()

    def check(self) -> None:
        """Raises :class:`LostError` if the newest lease (the calling task's
        with ``task_local``) was lost, :class:`NotHeld` if there is none
        (local state only)."""
        self._lock._check(self._holding())

    @property
    def fencing_token(self) -> int:
        """The fencing token of the newest hold (the calling task's with
        ``task_local``)."""
        return self._lock._fencing_token(self._holding())

    @property
    def token(self) -> str:
        """The owner token of the newest hold (the calling task's with
        ``task_local``)."""
        return self._lock._token(self._holding())

    @property
    def remaining(self) -> float:
        """Seconds the newest lease (the calling task's with ``task_local``)
        is certainly still ours (0.0 when lost, expired or not held)."""
        return self._lock._remaining(self._current())

    @property
    def holds(self) -> int:
        """How many holds the AsyncLock has (the calling task, with
        ``task_local=True``)."""
        owner = self._current()
        return 0 if owner is None else owner.count()

    @property
    def name(self) -> str:
        """The lock's name."""
        return self._lock.name

    @property
    def reentrant(self) -> bool:
        """Whether this AsyncLock may nest."""
        return self._lock.reentrant

    @property
    def task_local(self) -> bool:
        """Whether holds belong to the acquiring task (see the class docs)."""
        return self._task_local

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.AsyncLock cannot be pickled or copied: "
            "make a new Client and AsyncLock in the other process"
        )

    def __repr__(self) -> str:
        kind = "reentrant " if self.reentrant else ""
        return f"<latchkey.AsyncLock {kind}{self.name!r} holds={self.holds}>"


_AH = TypeVar("_AH", bound="_AsyncHold")


class _AsyncHold:
    """An :class:`OwnHold` (a Permit, a Leadership) for asyncio: the calls
    that talk to Redis are awaitable (ending it, ``extend``, ``owned``,
    ``async with``), the ones that read local state plain (``check``,
    ``lost``, ``fencing_token``, ``token``, ``remaining``). A cancelled
    end finishes, then raises :class:`asyncio.CancelledError`, as
    :meth:`AsyncLock.release` does."""

    __slots__ = ("_hold",)

    def __init__(self, hold: OwnHold) -> None:
        self._hold = hold

    async def _end(self) -> None:
        await _Call(self._hold._release).outcome()

    async def extend(self, ttl: float, replace_ttl: bool = True) -> None:
        """See :meth:`Permit.extend`."""
        _args.positive_ms(ttl, "ttl")
        hold = self._hold
        await _Call(lambda: hold.extend(ttl, replace_ttl)).outcome()

    async def owned(self) -> bool:
        """Whether Redis confirms this very hold (one round trip)."""
        return await _Call(self._hold.owned).outcome()

    def check(self) -> None:
        """See :meth:`Permit.check` (local state only)."""
        self._hold.check()

    @property
    def lost(self) -> bool:
        """Whether the lease was lost (local state)."""
        return self._hold.lost

    @property
    def fencing_token(self) -> int:
        """This hold's fencing token."""
        return self._hold.fencing_token

    @property
    def token(self) -> str:
        """This hold's owner token."""
        return self._hold.token

    @property
    def remaining(self) -> float:
        """Seconds the lease is certainly still ours (0.0 once it ended)."""
        return self._hold.remaining

    async def __aenter__(self: _AH) -> _AH:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self._end()

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"a latchkey.{type(self).__name__} cannot be pickled or copied")

    def __repr__(self) -> str:
        inner = type(self._hold).__name__
        return repr(self._hold).replace(f"<latchkey.{inner}", f"<latchkey.{type(self).__name__}", 1)


class AsyncPermit(_AsyncHold):
    """A :class:`Permit` for asyncio, from :class:`AsyncSemaphore`: the
    calls that talk to Redis are awaitable (``release``, ``extend``,
    ``owned``, ``async with``), the ones that read local state plain
    (``check``, ``lost``, ``fencing_token``, ``token``, ``remaining``).
    A cancelled ``release()`` finishes the release, then raises
    :class:`asyncio.CancelledError`, as :meth:`AsyncLock.release` does."""

    __slots__ = ()

    def __init__(self, permit: Permit) -> None:
        super().__init__(permit)

    async def release(self) -> None:
        """Gives the permits back; see :meth:`Permit.release`."""
        await self._end()

    @property
    def permits(self) -> int:
        """How many permits this hold took."""
        return self.permit.permits

    @property
    def name(self) -> str:
        """The semaphore's name."""
        return self.permit.name

    @property
    def permit(self) -> Permit:
        """The underlying (sync) :class:`Permit`."""
        permit = self._hold
        assert isinstance(permit, Permit)
        return permit


class AsyncSemaphore:
    """A named distributed semaphore for asyncio: :class:`Semaphore`'s
    calls as coroutines, which never block the event loop. Made by
    :meth:`Client.async_semaphore` (or ``AsyncSemaphore(client, name, size,
    ...)``) with :class:`Semaphore`'s options.

    ``await acquire(permits=1, timeout=None)`` returns an
    :class:`AsyncPermit`; cancelling the task ends the wait at once and
    gives back permits granted meanwhile before
    :class:`asyncio.CancelledError` is raised (as :meth:`AsyncLock.acquire`).
    ``async with semaphore as permit:`` takes one permit and releases it
    on exit (each ``async with`` releases its own permit, whichever task
    runs it).

    >>> pool = client.async_semaphore("db-connections", 3)  # doctest: +SKIP
    >>> async with await pool.acquire(2) as permit:
    ...     await query(permit.fencing_token)
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
        self._semaphore = Semaphore(
            client,
            name,
            size,
            ttl=ttl,
            auto_renew=auto_renew,
            on_lost=on_lost,
            retry_jitter=retry_jitter,
            renew_every=renew_every,
        )
        # The permits of `async with`, newest last, per task.
        self._entered: weakref.WeakKeyDictionary[asyncio.Task[object], list[AsyncPermit]] = (
            weakref.WeakKeyDictionary()
        )

    async def acquire(self, permits: int = 1, timeout: Optional[float] = None) -> AsyncPermit:
        """Takes ``permits`` permits, waiting on a thread of its own at most
        ``timeout`` seconds (None or -1: for ever; 0: one attempt); the
        errors are :meth:`Semaphore.acquire`'s."""
        permit = await self._acquire(permits, True, timeout)
        assert permit is not None
        return permit

    async def try_acquire(self, permits: int = 1) -> Optional[AsyncPermit]:
        """One attempt: the :class:`AsyncPermit`, or None if too few are free."""
        return await self._acquire(permits, False, None)

    async def _acquire(
        self, permits: int, blocking: bool, timeout: Optional[float]
    ) -> Optional[AsyncPermit]:
        _args.count(permits, "permits", maximum=2**32 - 1)
        if blocking:
            _args.wait_ms(timeout)  # a bad timeout raises here, not on the thread
        semaphore = self._semaphore
        slot = _Slot()

        def take(cancel: Cancel) -> bool:
            return semaphore._acquire_permits(slot, permits, blocking, timeout, cancel)

        if not await _acquire_hold(semaphore, slot, take):
            return None
        return AsyncPermit(Permit(semaphore, slot, permits))

    async def available(self) -> int:
        """The permits free now (one round trip)."""
        return await _Call(self._semaphore.available).outcome()

    async def force_release_all(self) -> bool:
        """See :meth:`Semaphore.force_release_all`."""
        return await _Call(self._semaphore.force_release_all).outcome()

    async def __aenter__(self) -> AsyncPermit:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("an AsyncSemaphore is entered from within an asyncio task")
        permit = await self.acquire(1)
        self._entered.setdefault(task, []).append(permit)
        return permit

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        task = asyncio.current_task()
        entered = self._entered.get(task) if task is not None else None
        if not entered:  # pragma: no cover - __aexit__ without __aenter__
            raise NotHeld(f"semaphore {self.name!r}: this task entered no permit")
        await entered.pop().release()

    @property
    def name(self) -> str:
        """The semaphore's name."""
        return self._semaphore.name

    @property
    def size(self) -> int:
        """The permits in all, as this handle counts them."""
        return self._semaphore.size

    @property
    def holds(self) -> int:
        """Holds taken through it, in this process, neither released nor lost."""
        return self._semaphore.holds

    @property
    def semaphore(self) -> Semaphore:
        """The underlying (sync) :class:`Semaphore`."""
        return self._semaphore

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.AsyncSemaphore cannot be pickled or copied: "
            "make a new Client and AsyncSemaphore in the other process"
        )

    def __repr__(self) -> str:
        return f"<latchkey.AsyncSemaphore {self.name!r} size={self.size} holds={self.holds}>"


class AsyncLeadership(_AsyncHold):
    """A :class:`Leadership` for asyncio, from :class:`AsyncElection`:
    ``resign``, ``extend``, ``owned`` and ``async with`` (which resigns on
    exit) are awaitable, ``check``, ``lost``, ``term``, ``value``,
    ``token`` and ``remaining`` plain. A cancelled ``resign()`` finishes,
    then raises :class:`asyncio.CancelledError`."""

    __slots__ = ()

    def __init__(self, leadership: Leadership) -> None:
        super().__init__(leadership)

    async def resign(self) -> None:
        """Gives the leadership up; see :meth:`Leadership.resign`."""
        await self._end()

    @property
    def term(self) -> int:
        """This leadership's term (its fencing token)."""
        return self.leadership.term

    @property
    def value(self) -> bytes:
        """The value announced."""
        return self.leadership.value

    @property
    def name(self) -> str:
        """The election's name."""
        return self.leadership.name

    @property
    def leadership(self) -> Leadership:
        """The underlying (sync) :class:`Leadership`."""
        leadership = self._hold
        assert isinstance(leadership, Leadership)
        return leadership


class AsyncElection:
    """A named election for asyncio: :class:`Election`'s calls as
    coroutines, which never block the event loop. Made by
    :meth:`Client.async_election` (or ``AsyncElection(client, name, ...)``)
    with :class:`Election`'s options.

    ``await campaign(value, timeout=None)`` returns an
    :class:`AsyncLeadership`; cancelling the task ends the wait at once and
    resigns a leadership won meanwhile before
    :class:`asyncio.CancelledError` is raised (as :meth:`AsyncLock.acquire`).
    ``await observe(known, timeout=None)`` waits for the next change (a
    cancelled task ends the wait at once); ``async for leader in
    election.watch()`` yields who leads, then every change.

    >>> election = client.async_election("scheduler")  # doctest: +SKIP
    >>> async with await election.campaign(b"host-a") as leadership:
    ...     await run_scheduler(leadership.term)
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
        fair: bool = False,
    ) -> None:
        self._election = Election(
            client,
            name,
            ttl=ttl,
            auto_renew=auto_renew,
            renew_every=renew_every,
            retry_jitter=retry_jitter,
            on_lost=on_lost,
            fair=fair,
        )

    async def campaign(
        self, value: Value = b"", timeout: Optional[float] = None
    ) -> AsyncLeadership:
        """Leads, announcing ``value``, waiting on a thread of its own at
        most ``timeout`` seconds (None or -1: for ever; 0: one attempt);
        the errors are :meth:`Election.campaign`'s."""
        data = _value_bytes(value)
        ms = _args.wait_ms(timeout)  # a bad timeout raises here, not on the thread
        election = self._election
        slot = _Slot()

        def take(cancel: Cancel) -> bool:
            election._campaign_into(slot, data, ms, cancel)
            return True

        await _acquire_hold(election, slot, take)
        return AsyncLeadership(Leadership(election, slot, data))

    async def leader(self) -> Optional[Leader]:
        """Who leads now (one round trip); see :meth:`Election.leader`."""
        return await _Call(self._election.leader).outcome()

    async def observe(
        self, known: Optional[Leader] = None, timeout: Optional[float] = None
    ) -> Optional[Leader]:
        """Waits for the next change; see :meth:`Election.observe`.
        Cancelling the task ends the wait at once."""
        if known is not None and not isinstance(known, Leader):
            raise TypeError(f"known must be a latchkey.Leader or None, not {type(known).__name__}")
        _args.wait_ms(timeout)
        election = self._election
        cancel = Cancel()
        call = _Call(lambda: election.observe(known, timeout, cancel=cancel))
        cancelled = await call.finish(on_cancel=cancel.cancel)
        if cancelled is not None:
            raise cancelled
        return call.result()

    async def watch(
        self, timeout_per_change: Optional[float] = None
    ) -> AsyncIterator[Optional[Leader]]:
        """Yields who leads now, then every change; see :meth:`Election.watch`."""
        known = await self.leader()
        yield known
        while True:
            known = await self.observe(known, timeout_per_change)
            yield known

    @property
    def name(self) -> str:
        """The election's name."""
        return self._election.name

    @property
    def holds(self) -> int:
        """Leaderships won through it, in this process, neither resigned nor lost."""
        return self._election.holds

    @property
    def election(self) -> Election:
        """The underlying (sync) :class:`Election`."""
        return self._election

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.AsyncElection cannot be pickled or copied: "
            "make a new Client and AsyncElection in the other process"
        )

    def __repr__(self) -> str:
        return f"<latchkey.AsyncElection {self.name!r} holds={self.holds}>"


def __getattr__(name: str) -> object:
    # The read-write lock's asyncio classes live in a module of their own
    # (_rwlock_aio.py), built on the helpers above, which it imports.
    if name in ("AsyncRwLock", "AsyncRwHold"):
        from . import _rwlock_aio

        return getattr(_rwlock_aio, name)
    raise AttributeError(f"module 'latchkey.aio' has no attribute {name!r}")
