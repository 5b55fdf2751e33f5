"""The read-write lock: an :class:`RwLock` that any number of readers, or
one writer, hold at a time, and the :class:`RwHold` each acquisition
returns.

It is the library's read-write lock (``latchkey_rwlock_*``): writers are
preferred (a waiting writer stops new readers), each hold (a reader's or
the writer's) is a lease of its own, renewed while held, reported lost as a
lock's lease is, and given back by Redis when its holder dies and the
lease ends. Each hold is an ordinary C guard, so an :class:`RwHold` offers
a Permit's per-hold calls (``lock._Slot`` through ``_hold.OwnHold``), and
an RwLock makes its holds as a Semaphore does (``_hold.HoldSource``): the
same rules for threads, garbage collection, signals, fork, exit and close
(see _hold.py).
"""

from __future__ import annotations

from ctypes import c_void_p
from typing import Callable, Literal, NoReturn, Optional

from . import _args
from ._hold import HoldSource, OwnHold
from ._lib import lib
from .cancel import Cancel
from .client import Client
from .lock import LostLease, _lock_options, _Slot

__all__ = ["RwLock", "RwHold"]

Mode = Literal["read", "write"]
"""Which side a hold took."""

_rw_read = lib.latchkey_rwlock_read
_rw_write = lib.latchkey_rwlock_write
_rw_try_read = lib.latchkey_rwlock_try_read
_rw_try_write = lib.latchkey_rwlock_try_write
_rw_free = lib.latchkey_rwlock_free


def _free_rwlock(handle: int) -> None:
    _rw_free(handle)


class RwHold(OwnHold):
    """One hold of an :class:`RwLock`, a reader's (``mode == "read"``) or
    the writer's (``mode == "write"``): its own lease, owner token and
    fencing token (readers and writers draw from one counter, so a
    writer's token is above every hold before it). Returned by
    :meth:`RwLock.read`, :meth:`RwLock.write` and their ``try_`` forms.

    A context manager that releases on exit (raising :class:`NotHeld` if
    the lease was lost meanwhile); usable from any thread. Dropping it
    does not release it: it is held (and renewed) until :meth:`release`,
    its loss, its client's close, or interpreter exit. ``extend``,
    ``check``, ``owned``, ``lost``, ``fencing_token``, ``token`` and
    ``remaining`` concern this hold's lease, as for a :class:`Permit`.

    >>> with config.read() as hold:  # doctest: +SKIP
    ...     settings = load(hold.fencing_token)
    """

    __slots__ = ("_mode",)

    def __init__(self, rwlock: "RwLock", slot: _Slot, mode: Mode) -> None:
        super().__init__(rwlock, slot)
        self._mode: Mode = mode

    def release(self) -> None:
        """Ends the hold. Raises :class:`NotHeld` if the lease had been lost
        meanwhile or it was released already; Redis failures raise too
        (the lease then runs out at its ttl). After any outcome it counts
        as released."""
        self._release()

    @property
    def mode(self) -> Mode:
        """``"read"`` for a reader's hold, ``"write"`` for the writer's."""
        return self._mode

    @property
    def name(self) -> str:
        """The read-write lock's name."""
        return self.rwlock.name

    @property
    def rwlock(self) -> "RwLock":
        """The RwLock it was acquired through."""
        source = self._source
        assert isinstance(source, RwLock)
        return source

    def __repr__(self) -> str:
        return f"<latchkey.RwHold {self.name!r} {self._mode} {self._state()}>"


class RwLock(HoldSource):
    """A named distributed read-write lock, shared by every process (in
    any language) that uses the name. Make it with :meth:`Client.rwlock`.

    Any number of readers (:meth:`read`), or one writer (:meth:`write`),
    hold it at a time; each acquisition returns an :class:`RwHold` with a
    lease of its own. Writers are preferred: a writer that waits stops
    new readers, so a stream of readers never starves writers; a writer
    that gives up lets them in again. A reader that dies frees only its
    own share, when its lease ends. Waiters are woken by releases (no
    polling). ``with rwlock.read() as hold:`` and ``with rwlock.write() as
    hold:`` release on exit.

    Not reentrant: a thread that holds a read lease and asks for another
    waits behind a waiting writer, which waits for the first lease; a
    reader never upgrades to a writer, and a writer that asks to read
    waits for itself. Take one hold per piece of work.

    Options are :class:`Lock`'s, less ``reentrant``, ``fair``,
    ``thread_local`` and ``blocking_timeout``. Read-write locks are
    refused on Redlock clients: making one raises :class:`InvalidArgument`
    there. An RwLock and a Lock, Semaphore or Election of one name share
    no key.

    An RwLock is thread-safe; blocking calls release the GIL; a wait can
    be cancelled with a :class:`Cancel` and, on the main thread, by Ctrl-C.

    >>> config = client.rwlock("config", ttl=10)  # doctest: +SKIP
    >>> with config.read() as hold:
    ...     use(load_config(), hold.fencing_token)
    >>> with config.write(timeout=5):
    ...     store_config(new)
    """

    _kind = "RwLock"
    _what = "read-write lock"

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
        if not isinstance(client, Client):
            raise TypeError(f"client must be a latchkey.Client, not {type(client).__name__}")
        name_b = _args.text(name, "name")
        ttl_ms = _args.positive_ms(ttl, "ttl")
        if on_lost is not None and not callable(on_lost):
            raise TypeError(f"on_lost must be callable, not {type(on_lost).__name__}")
        jitter_ms = (
            None if retry_jitter is None else _args.non_negative_ms(retry_jitter, "retry_jitter")
        )
        renew_ms = _args.optional_positive_ms(renew_every, "renew_every")
        self._client = client
        self._name = name
        options = _lock_options(ttl_ms, auto_renew, None, None, jitter_ms, renew_ms, on_lost)
        self._open(
            client,
            options,
            lambda c, o, out, err: lib.latchkey_rwlock_new(c, name_b, o, out, err),
            _free_rwlock,
        )

    def _describe(self) -> str:
        return f"read-write lock {self._name!r}"

    # --- acquiring ----------------------------------------------------------------

    def read(self, timeout: Optional[float] = None, *, cancel: Optional[Cancel] = None) -> RwHold:
        """Takes a read lease and returns its :class:`RwHold`, waiting
        without polling (woken by the writer's release) at most ``timeout``
        seconds (None or -1: for ever; 0: one attempt) while a writer holds
        or waits for the lock. Raises :class:`LockTimeout` if a writer held
        or waited throughout, :class:`Cancelled` if ``cancel`` was
        cancelled (from any thread), KeyboardInterrupt for Ctrl-C during a
        wait on the main thread; an interrupted or cancelled acquire leaves
        nothing held (a grant that raced with it is given back)."""
        return self._hold("read", timeout, cancel)

    def write(self, timeout: Optional[float] = None, *, cancel: Optional[Cancel] = None) -> RwHold:
        """Takes the lock for writing (no reader, no other writer) and
        returns its :class:`RwHold`, waiting as :meth:`read` does; while it
        waits, new readers wait too. Raises :class:`LockTimeout` if readers
        or another writer held it throughout (new readers are let in again
        at once); the other errors are :meth:`read`'s."""
        return self._hold("write", timeout, cancel)

    def try_read(self) -> Optional[RwHold]:
        """One attempt, no waiting: a reader's :class:`RwHold`, or None if a
        writer holds or waits for the lock."""
        return self._try("read")

    def try_write(self) -> Optional[RwHold]:
        """One attempt, no waiting: the writer's :class:`RwHold`, or None if
        readers or another writer hold the lock."""
        return self._try("write")

    def _hold(self, mode: Mode, timeout: Optional[float], cancel: Optional[Cancel]) -> RwHold:
        slot = _Slot()
        try:
            self._take_side(slot, mode, True, timeout, cancel)
            return RwHold(self, slot, mode)
        except BaseException:
            self._abandon(slot)
            raise

    def _try(self, mode: Mode) -> Optional[RwHold]:
        slot = _Slot()
        try:
            if not self._take_side(slot, mode, False, None, None):
                return None
            return RwHold(self, slot, mode)
        except BaseException:
            self._abandon(slot)
            raise

    def _take_side(
        self,
        slot: _Slot,
        mode: Mode,
        blocking: bool,
        timeout: Optional[float],
        cancel: Optional[Cancel],
    ) -> bool:
        """Takes one side into `slot`: True when held; False when one
        attempt (not blocking) found it taken; raises otherwise."""
        guard = slot.guard
        call = _rw_read if mode == "read" else _rw_write

        def attempt(handle: int, ms: int, cancel_handle: Optional[int], err: c_void_p) -> int:
            return int(call(handle, ms, cancel_handle, guard, err))

        if not blocking:
            once = _rw_try_read if mode == "read" else _rw_try_write
            return self._acquire_into(
                slot, None, cancel, attempt, lambda h, err: once(h, guard, err)
            )
        return self._acquire_into(slot, _args.wait_ms(timeout), cancel, attempt)

    # --- the lock -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The read-write lock's name."""
        return self._name

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.RwLock cannot be pickled or copied: "
            "make a new Client and RwLock in the other process"
        )

    def __repr__(self) -> str:
        return f"<latchkey.RwLock {self._name!r} holds={self.holds}>"
