"""latchkey: distributed locks over Redis that never lose a lease silently.

The Python binding of the latchkey library (one Rust implementation shared
with C, Go and Rust through its C ABI, loaded here with ctypes)::

    import latchkey

    with latchkey.Client("redis://127.0.0.1:6379") as client:
        lock = client.lock("nightly-report", ttl=10)
        with lock:                      # waits; renewed every ttl/3 while held
            client.fenced_write("report", lock.fencing_token, b"done")
            lock.check()                # LostError if the lease was lost

        if lock.acquire(timeout=2.5):   # False if still held by someone else
            try:
                ...
            finally:
                lock.release()          # NotHeld if the lease was lost meanwhile

With asyncio, ``client.async_lock(name, ...)`` gives an :class:`AsyncLock`
whose waits never block the event loop and whose cancelled acquires give
back what they were granted (see :mod:`latchkey.aio`); and
``@client.locked("invoice:{invoice_id}", timeout=5)`` runs a plain or
``async def`` function holding a lock named after its arguments::

    async with client.async_lock("nightly-report", ttl=10) as lock:
        await write_report(lock.fencing_token)

``client.semaphore(name, size, ...)`` gives a :class:`Semaphore` whose
permits are leases (renewed while held, reported when lost, given back by
Redis when a holder dies); each acquisition is a :class:`Permit`::

    pool = client.semaphore("db-connections", 3)
    with pool.acquire(2) as permit:     # or `with pool as permit:` for one
        use_two_connections(permit.fencing_token)

``client.election(name, ...)`` gives an :class:`Election`: one candidate
at a time leads, with a term that increases with every leadership, and
observers are woken by every change::

    election = client.election("scheduler")
    with election.campaign(b"host-a:8080") as leadership:
        leadership.check()              # before each piece of a leader's work
        print(election.leader())        # Leader(term=..., value=b'host-a:8080')

``client.rwlock(name, ...)`` gives an :class:`RwLock`: any number of
readers or one writer, writers preferred; each hold is an :class:`RwHold`::

    config = client.rwlock("config")
    with config.read() as hold:         # readers share; a waiting writer stops new ones
        use(load_config(), hold.fencing_token)
    with config.write(timeout=5):
        store_config(new)

The shared library is the file the environment variable
``LATCHKEY_LIBRARY`` names, else the copy inside this package (which
``pip install`` builds and bundles), else a system-installed one
(``make install``); never a ``target/release`` above the package.
"""

from typing import TYPE_CHECKING, Any

from ._lib import LibraryNotFound, library_path
from ._lib import version as _library_version
from .cancel import Cancel
from .client import (
    MAX_REPORTED_WAITERS,
    Client,
    FencedValue,
    FencedWrite,
    LockInfo,
    MasterState,
    QueuedWaiter,
)
from .election import MAX_LEADER_VALUE, Election, Leader, Leadership
from .errors import (
    AuthenticationFailed,
    Cancelled,
    ClientClosed,
    ConnectionFailed,
    InternalPanic,
    InvalidArgument,
    LatchkeyError,
    LockTimeout,
    LostError,
    NoQuorum,
    NotHeld,
    ServerError,
)
from .lock import Lock, LostLease
from .multi import MAX_MULTI_LOCK_NAMES, MultiGuard, MultiLock
from .rwlock import RwHold, RwLock
from .semaphore import MAX_PERMITS, Permit, Semaphore

if TYPE_CHECKING:
    from ._rwlock_aio import AsyncRwHold, AsyncRwLock
    from .aio import AsyncElection, AsyncLeadership, AsyncLock, AsyncPermit, AsyncSemaphore
    from .aio_multi import AsyncMultiGuard, AsyncMultiLock

__version__ = "0.1.0"

__all__ = [
    "Cancel",
    "Client",
    "Lock",
    "AsyncLock",
    "Semaphore",
    "Permit",
    "MAX_PERMITS",
    "AsyncSemaphore",
    "AsyncPermit",
    "Election",
    "Leadership",
    "Leader",
    "MAX_LEADER_VALUE",
    "AsyncElection",
    "AsyncLeadership",
    "MultiLock",
    "MultiGuard",
    "MAX_MULTI_LOCK_NAMES",
    "AsyncMultiLock",
    "AsyncMultiGuard",
    "RwLock",
    "RwHold",
    "AsyncRwLock",
    "AsyncRwHold",
    "LockInfo",
    "QueuedWaiter",
    "MAX_REPORTED_WAITERS",
    "LostLease",
    "MasterState",
    "FencedWrite",
    "FencedValue",
    "LatchkeyError",
    "InvalidArgument",
    "LockTimeout",
    "NotHeld",
    "LostError",
    "Cancelled",
    "ConnectionFailed",
    "ServerError",
    "NoQuorum",
    "InternalPanic",
    "AuthenticationFailed",
    "ClientClosed",
    "LibraryNotFound",
    "library_path",
    "library_version",
]


def library_version() -> str:
    """The version of the loaded liblatchkey ("MAJOR.MINOR.PATCH")."""
    return _library_version()


def __getattr__(name: str) -> Any:
    # AsyncLock (and AsyncSemaphore, AsyncPermit, AsyncElection,
    # AsyncLeadership), and asyncio with them,
    # on first use: a program without asyncio does not pay for importing it.
    if name in _ASYNC:
        from . import aio

        return getattr(aio, name)
    if name in _ASYNC_MULTI:
        from . import aio_multi

        return getattr(aio_multi, name)
    raise AttributeError(f"module 'latchkey' has no attribute {name!r}")


_ASYNC: tuple[str, ...] = ("AsyncLock", "AsyncSemaphore", "AsyncPermit", "AsyncElection")
_ASYNC += ("AsyncLeadership", "AsyncRwLock", "AsyncRwHold")
_ASYNC_MULTI = ("AsyncMultiLock", "AsyncMultiGuard")


def __dir__() -> list[str]:
    return sorted([*globals(), *_ASYNC, *_ASYNC_MULTI])
