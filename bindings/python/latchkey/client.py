"""The Client: where Redis is (one server, Redlock masters, Sentinel or
Cluster), and what to ask it about a lock by name."""

from __future__ import annotations

import os
import weakref
from ctypes import POINTER, c_bool, c_char_p, c_size_t, c_uint64, c_void_p, string_at
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Iterable,
    NamedTuple,
    NoReturn,
    Optional,
    TypeVar,
    Union,
)

from . import _args, _lib
from ._handle import SharedHandle
from ._lib import lib, raise_error
from .errors import LatchkeyError

if TYPE_CHECKING:
    from ._rwlock_aio import AsyncRwLock
    from .aio import AsyncElection, AsyncLock, AsyncSemaphore
    from .aio_multi import AsyncMultiLock
    from .election import Election
    from .lock import Lock, LostLease
    from .multi import MultiLock
    from .rwlock import RwLock
    from .semaphore import Semaphore

_F = TypeVar("_F", bound=Callable[..., Any])

_Path = Union[str, "os.PathLike[str]"]
"""A file path: a str or an os.PathLike of str (a pathlib.Path)."""

__all__ = ["Client", "LockInfo", "QueuedWaiter", "MasterState", "FencedWrite", "FencedValue"]

MAX_REPORTED_WAITERS = 1000
"""The most waiters :meth:`Client.inspect` lists in :attr:`LockInfo.queue`
(:attr:`LockInfo.queue_len` counts them all)."""

_client_free = lib.latchkey_client_free

Bytes = Union[bytes, bytearray, memoryview]


@dataclass(frozen=True)
class QueuedWaiter:
    """One waiting acquisition queued for a lock, from :attr:`LockInfo.queue`."""

    id: str
    """The entry's id: ``w:`` and a random id, one per waiting acquisition
    (not the owner token it gets when it takes the lock)."""
    expires_in: float
    """Seconds until the entry runs out unless its waiter asks again (a live
    waiter asks at least every 5 s, renewing it to 15 s)."""


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock, and who waits for it, from :meth:`Client.inspect`."""

    owner_token: str
    """The holder's owner token (32 hex digits)."""
    fencing_token: int
    """The fencing token issued to the holder."""
    ttl: Optional[float]
    """Seconds until the lease expires in Redis; None if it has no expiry."""
    reentrant: bool
    """Whether it is a reentrant lock."""
    hold_count: int
    """How many nested holds a reentrant lock has (1 for a plain lock)."""
    queue: list[QueuedWaiter] = field(default_factory=list, hash=False)
    """The live waiters, in the order a release hands the lock to them (the
    earliest to queue first); at most
    :data:`MAX_REPORTED_WAITERS` (1000). Always empty for Redlock, whose
    waiters do not queue. Left out of the hash (a list is not hashable)."""
    queue_len: int = 0
    """How many live waiters are queued: more than ``len(queue)`` when the
    list was cut."""


@dataclass(frozen=True)
class MasterState:
    """One Redlock master's view of a lock, from :meth:`Client.inspect_masters`."""

    server: str
    """Which master ("redis at host:port")."""
    holder: Optional[str]
    """The owner token this master holds for the lock, or None."""
    fencing_token: Optional[int]
    """The holder's fencing token on this master, if it knows one."""
    ttl: Optional[float]
    """Seconds until the key expires on this master; None if unknown or no expiry."""
    error: Optional[str]
    """Why this master did not answer, or None if it did."""


class FencedWrite(NamedTuple):
    """The outcome of :meth:`Client.fenced_write`."""

    written: bool
    """Whether the value was written (False: refused, the token was stale)."""
    highest_token: int
    """The highest fencing token the resource has accepted so far."""


class FencedValue(NamedTuple):
    """A resource's value, from :meth:`Client.fenced_read`."""

    fencing_token: int
    """The fencing token that wrote the value."""
    value: bytes
    """The value."""


class Client:
    """A connection to Redis shared by any number of locks: a pool of
    connections, a release listener and one renewal thread.

    ``Client(url)`` talks to one server (``redis://[user:password@]host[:port][/db]``
    or ``unix:///path``); :meth:`redlock`, :meth:`sentinel` and
    :meth:`cluster` make clients for the other deployments. No connection is
    made until the first command. Durations are in seconds; options left at
    None keep the library's defaults (connect and command timeout 2 s,
    prefix ``"latchkey"``, pool size 8, no spinning).

    ``spin_us`` (every constructor): how long, in microseconds, a thread
    waiting for a reply from Redis keeps asking the socket before it sleeps
    until the reply. ``None`` keeps the default, ``LATCHKEY_SPIN_US`` from
    the environment, else 0; ``0`` turns spinning off; at
    most 10000 (10 ms): more raises :class:`InvalidArgument`, a negative
    number ``ValueError``. A thread woken by the reply costs a scheduler
    wake-up, which on a loaded virtual machine can cost more than the round trip;
    spinning saves it at the price of the CPU spent asking. Each server's
    connections spin only while its replies come within the limit, and at
    most one fewer threads of the process than it has cores spin at once.

    TLS (every constructor; see the main README's TLS section): a
    ``rediss://host:port`` URL connects over TLS, checking the server's
    certificate against the system's CA store and the URL's host.
    ``tls_ca_file`` (a path) trusts the CA certificates of that PEM file
    instead; ``tls_client_cert=(cert_file, key_file)`` shows that PEM
    certificate and key to a server with ``tls-auth-clients yes`` (mutual
    TLS); ``tls_server_name`` is the name the certificate must carry when
    the URL names another (an IP address, a tunnel);
    ``tls_insecure_skip_verify=True`` accepts ANY certificate: encrypted,
    but to whoever answers, for throwaway test servers only. The files are
    read when the client is made: a missing file, one without a
    certificate, a key that does not match its certificate, or any TLS
    option with no ``rediss://`` URL raise :class:`InvalidArgument` naming
    the cause. A handshake that fails raises :class:`ConnectionFailed` at
    the first command, saying why (a CA this client does not trust, a
    certificate for another name). Redlock masters are each reached as
    their URL says; Sentinel and Cluster URLs are all ``rediss://`` or none.

    A client is thread-safe: share one between all threads. Use it as a
    context manager, or call :meth:`close`, which releases every lock still
    held through it (whichever thread holds it) and ends its waits. A lock
    held by a thread that has ended stays held (and renewed) until it is
    released, its client is closed, or its lease is lost: the binding never
    releases a hold behind its user's back. After ``os.fork()`` the child
    must open its own client: one inherited from the parent refuses to work.

    >>> with latchkey.Client("redis://127.0.0.1:6379") as client:  # doctest: +SKIP
    ...     with client.lock("nightly-report", ttl=10):
    ...         run_report()
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: Optional[float] = None,
        command_timeout: Optional[float] = None,
        prefix: Optional[str] = None,
        pool_size: Optional[int] = None,
        spin_us: Optional[int] = None,
        wait_for_replicas: Optional[tuple[int, float]] = None,
        tls_ca_file: Optional[_Path] = None,
        tls_client_cert: Optional[tuple[_Path, _Path]] = None,
        tls_server_name: Optional[str] = None,
        tls_insecure_skip_verify: bool = False,
    ) -> None:
        url_b = _args.text(url, "url")
        self._open(
            "redis",
            lambda options, out, err: lib.latchkey_client_open(url_b, options, out, err),
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            prefix=prefix,
            pool_size=pool_size,
            spin_us=spin_us,
            wait_for_replicas=wait_for_replicas,
            tls_ca_file=tls_ca_file,
            tls_client_cert=tls_client_cert,
            tls_server_name=tls_server_name,
            tls_insecure_skip_verify=tls_insecure_skip_verify,
        )

    @classmethod
    def redlock(
        cls,
        urls: Iterable[str],
        *,
        connect_timeout: Optional[float] = None,
        command_timeout: Optional[float] = None,
        prefix: Optional[str] = None,
        pool_size: Optional[int] = None,
        spin_us: Optional[int] = None,
        restart_delay: Optional[float] = None,
        tls_ca_file: Optional[_Path] = None,
        tls_client_cert: Optional[tuple[_Path, _Path]] = None,
        tls_server_name: Optional[str] = None,
        tls_insecure_skip_verify: bool = False,
    ) -> "Client":
        """A Redlock client over independent masters (an odd number, at
        least 3). A lock is held when a quorum (N/2+1) granted it, and only
        within ttl - elapsed - drift; a master that is down is a vote
        against, and too few answers raise :class:`NoQuorum`.

        ``restart_delay`` (seconds): how long a master stays out of every
        quorum after it (re)started, since one that restarts without its
        keys would grant held locks again (the Redlock paper's delayed
        restart). ``None``, the default, is the largest ttl this client has
        used (a master that refuses INFO counts as just restarted): for one
        ttl after most masters start, no lock is granted; ``acquire`` waits
        and raises :class:`NoQuorum`, saying why, when it stops waiting.
        When clients use different ttls, set it on every client to the
        largest ttl any uses. ``0`` lets every master count at once (only
        for masters that keep their keys across restarts, or whose
        restarts are delayed by their operators)."""
        encoded = _args.text_list(urls, "urls")
        array = (c_char_p * len(encoded))(*encoded)
        self = cls.__new__(cls)
        self._open(
            "redlock",
            lambda options, out, err: lib.latchkey_client_open_redlock(
                array, len(encoded), options, out, err
            ),
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            prefix=prefix,
            pool_size=pool_size,
            spin_us=spin_us,
            restart_delay=restart_delay,
            tls_ca_file=tls_ca_file,
            tls_client_cert=tls_client_cert,
            tls_server_name=tls_server_name,
            tls_insecure_skip_verify=tls_insecure_skip_verify,
        )
        return self

    @classmethod
    def sentinel(
        cls,
        sentinel_urls: Iterable[str],
        master_name: str,
        *,
        master_password: Optional[str] = None,
        master_db: Optional[int] = None,
        connect_timeout: Optional[float] = None,
        command_timeout: Optional[float] = None,
        prefix: Optional[str] = None,
        pool_size: Optional[int] = None,
        spin_us: Optional[int] = None,
        wait_for_replicas: Optional[tuple[int, float]] = None,
        tls_ca_file: Optional[_Path] = None,
        tls_client_cert: Optional[tuple[_Path, _Path]] = None,
        tls_server_name: Optional[str] = None,
        tls_insecure_skip_verify: bool = False,
    ) -> "Client":
        """A client that finds the master ``master_name`` through Redis
        Sentinel and follows failovers. ``master_password`` and
        ``master_db`` are the master's own (the sentinel URLs carry the
        sentinels' credentials). ``wait_for_replicas=(n, seconds)`` makes
        each acquire wait until n replicas have the lock."""
        encoded = _args.text_list(sentinel_urls, "sentinel_urls")
        master = _args.text(master_name, "master_name")
        array = (c_char_p * len(encoded))(*encoded)
        self = cls.__new__(cls)
        self._open(
            "sentinel",
            lambda options, out, err: lib.latchkey_client_open_sentinel(
                array, len(encoded), master, options, out, err
            ),
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            prefix=prefix,
            pool_size=pool_size,
            spin_us=spin_us,
            wait_for_replicas=wait_for_replicas,
            master_password=master_password,
            master_db=master_db,
            tls_ca_file=tls_ca_file,
            tls_client_cert=tls_client_cert,
            tls_server_name=tls_server_name,
            tls_insecure_skip_verify=tls_insecure_skip_verify,
        )
        return self

    @classmethod
    def cluster(
        cls,
        seed_urls: Iterable[str],
        *,
        connect_timeout: Optional[float] = None,
        command_timeout: Optional[float] = None,
        prefix: Optional[str] = None,
        pool_size: Optional[int] = None,
        spin_us: Optional[int] = None,
        wait_for_replicas: Optional[tuple[int, float]] = None,
        tls_ca_file: Optional[_Path] = None,
        tls_client_cert: Optional[tuple[_Path, _Path]] = None,
        tls_server_name: Optional[str] = None,
        tls_insecure_skip_verify: bool = False,
    ) -> "Client":
        """A client for a Redis Cluster, given some of its nodes. Every key
        of a lock shares a hash tag, so each lock lives on one slot; MOVED
        and ASK are followed. ``wait_for_replicas=(n, seconds)`` makes each
        acquire wait (Redis WAIT) until n replicas of the master serving the
        lock's slot have the lock: n is per master."""
        encoded = _args.text_list(seed_urls, "seed_urls")
        array = (c_char_p * len(encoded))(*encoded)
        self = cls.__new__(cls)
        self._open(
            "cluster",
            lambda options, out, err: lib.latchkey_client_open_cluster(
                array, len(encoded), options, out, err
            ),
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            prefix=prefix,
            pool_size=pool_size,
            spin_us=spin_us,
            wait_for_replicas=wait_for_replicas,
            tls_ca_file=tls_ca_file,
            tls_client_cert=tls_client_cert,
            tls_server_name=tls_server_name,
            tls_insecure_skip_verify=tls_insecure_skip_verify,
        )
        return self

    # --- lifetime -----------------------------------------------------------------

    def _open(
        self,
        kind: str,
        opener: Callable[[Any, Any, Any], int],
        *,
        connect_timeout: Optional[float] = None,
        command_timeout: Optional[float] = None,
        prefix: Optional[str] = None,
        pool_size: Optional[int] = None,
        spin_us: Optional[int] = None,
        wait_for_replicas: Optional[tuple[int, float]] = None,
        master_password: Optional[str] = None,
        master_db: Optional[int] = None,
        restart_delay: Optional[float] = None,
        tls_ca_file: Optional[_Path] = None,
        tls_client_cert: Optional[tuple[_Path, _Path]] = None,
        tls_server_name: Optional[str] = None,
        tls_insecure_skip_verify: bool = False,
    ) -> None:
        self._kind = kind
        # Check every argument before allocating anything in C.
        settings: list[tuple[Any, tuple[Any, ...]]] = []
        connect_ms = _args.optional_positive_ms(connect_timeout, "connect_timeout")
        if connect_ms is not None:
            settings.append((lib.latchkey_client_options_set_connect_timeout_ms, (connect_ms,)))
        command_ms = _args.optional_positive_ms(command_timeout, "command_timeout")
        if command_ms is not None:
            settings.append((lib.latchkey_client_options_set_command_timeout_ms, (command_ms,)))
        if prefix is not None:
            settings.append(
                (lib.latchkey_client_options_set_prefix, (_args.text(prefix, "prefix"),))
            )
        if pool_size is not None:
            size = _args.count(pool_size, "pool_size", maximum=2**32)
            settings.append((lib.latchkey_client_options_set_pool_size, (size,)))
        if spin_us is not None:
            # The library checks the limit (at most 10000) and says so.
            spin = _args.count(spin_us, "spin_us")
            settings.append((lib.latchkey_client_options_set_spin_us, (spin,)))
        if wait_for_replicas is not None:
            if not isinstance(wait_for_replicas, tuple) or len(wait_for_replicas) != 2:
                raise TypeError(
                    "wait_for_replicas must be a tuple (replicas, timeout in seconds), "
                    f"not {wait_for_replicas!r}"
                )
            replicas = _args.count(wait_for_replicas[0], "wait_for_replicas[0]", maximum=2**32)
            wait_ms = _args.non_negative_ms(wait_for_replicas[1], "wait_for_replicas[1]")
            settings.append(
                (lib.latchkey_client_options_set_wait_for_replicas, (replicas, wait_ms))
            )
        if master_password is not None:
            password = _args.text(master_password, "master_password")
            settings.append((lib.latchkey_client_options_set_master_password, (password,)))
        if master_db is not None:
            db = _args.count(master_db, "master_db", maximum=2**63 - 1)
            settings.append((lib.latchkey_client_options_set_master_db, (db,)))
        if restart_delay is not None:
            delay_ms = _args.non_negative_ms(restart_delay, "restart_delay")
            settings.append((lib.latchkey_client_options_set_redlock_restart_delay_ms, (delay_ms,)))
        # TLS: only translated here; the library reads the files, checks the
        # name and refuses options with no rediss:// URL when it opens.
        if tls_ca_file is not None:
            ca = _args.path(tls_ca_file, "tls_ca_file")
            settings.append((lib.latchkey_client_options_set_tls_ca_file, (ca,)))
        if tls_client_cert is not None:
            if not isinstance(tls_client_cert, tuple) or len(tls_client_cert) != 2:
                raise TypeError(
                    "tls_client_cert must be a tuple (certificate file, key file), "
                    f"not {type(tls_client_cert).__name__}"
                )
            cert = _args.path(tls_client_cert[0], "tls_client_cert[0]")
            key = _args.path(tls_client_cert[1], "tls_client_cert[1]")
            settings.append((lib.latchkey_client_options_set_tls_client_cert, (cert, key)))
        if tls_server_name is not None:
            server_name = _args.text(tls_server_name, "tls_server_name")
            settings.append((lib.latchkey_client_options_set_tls_server_name, (server_name,)))
        if not isinstance(tls_insecure_skip_verify, bool):
            raise TypeError(
                "tls_insecure_skip_verify must be a bool, "
                f"not {type(tls_insecure_skip_verify).__name__}"
            )
        if tls_insecure_skip_verify:
            settings.append((lib.latchkey_client_options_set_tls_insecure_skip_verify, (True,)))

        options = c_void_p()
        err = c_void_p()
        if settings:
            status = lib.latchkey_client_options_new(options, err)
            if status:
                raise_error(status, err)
        try:
            for setter, values in settings:
                status = setter(options, *values, err)
                if status:
                    raise_error(status, err)
            client = c_void_p()
            status = opener(options, client, err)
            if status:
                raise_error(status, err)
        finally:
            lib.latchkey_client_options_free(options)
        if not client.value:  # pragma: no cover - the ABI promises a handle
            raise LatchkeyError("opening a client succeeded without a client handle")
        self._state = SharedHandle(client.value, _client_free)
        from .lock import _HANDLES

        _HANDLES.add(self._state)
        # The finalizer sees only the SharedHandle, never this object, so it
        # may run in any order within a reference cycle.
        self._finalizer = weakref.finalize(self, self._state.close, "is closed (garbage-collected)")
        # At exit a daemon thread may still be inside a call on it: leave
        # it to the end of the process (see lock._at_exit).
        self._finalizer.atexit = False

    def close(self) -> None:
        """Closes the client, as in every language (the library's
        ``latchkey_client_close``), then frees it; closing again does
        nothing. Every lock (and semaphore permit, and leadership) still held through the
        client is released in Redis at once, whichever thread holds it
        (also one whose thread has ended), and its holder then holds
        nothing (:meth:`Lock.check` and :meth:`Permit.check` raise
        :class:`NotHeld`: a close is an ending, not a loss, and no
        ``on_lost`` callback runs). Every acquire of the client that is
        waiting raises :class:`ClientClosed` promptly, and so does every
        later acquire. Other calls on the client raise
        :class:`LatchkeyError`.

        Raises the error of a release Redis did not confirm (the hold is
        given back in the background once Redis answers); the client is
        closed all the same."""
        err = c_void_p()
        try:
            handle = self._state.enter("Client")
        except LatchkeyError:
            return  # closed already (or inherited through fork: not ours)
        try:
            status = int(lib.latchkey_client_close(handle, err))
        finally:
            self._state.exit()
        self._state.close()
        if status:
            raise_error(status, err)

    @property
    def closed(self) -> bool:
        """Whether the client may no longer be used: :meth:`close` was
        called, it was inherited through a fork, or it is being collected."""
        return self._state.closed

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.Client cannot be pickled or copied: open a new Client in the other process"
        )

    def __repr__(self) -> str:
        state = "closed" if self._state.closed else "open"
        return f"<latchkey.Client {self._kind} {state}>"

    def _enter(self) -> int:
        """Marks a call as using the handle, which close() then waits for."""
        return self._state.enter("Client")

    def _exit(self) -> None:
        self._state.exit()

    # --- locks --------------------------------------------------------------------

    def lock(
        self,
        name: str,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        reentrant: bool = False,
        fair: bool = False,
        thread_local: bool = True,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
        blocking_timeout: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> "Lock":
        """A handle for the distributed lock ``name``; see :class:`Lock`
        for the arguments. Nothing is sent to Redis until it is acquired."""
        from .lock import Lock

        return Lock(
            self,
            name,
            ttl=ttl,
            auto_renew=auto_renew,
            reentrant=reentrant,
            fair=fair,
            thread_local=thread_local,
            on_lost=on_lost,
            blocking_timeout=blocking_timeout,
            retry_jitter=retry_jitter,
            renew_every=renew_every,
        )

    def async_lock(
        self,
        name: str,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        reentrant: bool = False,
        fair: bool = False,
        task_local: bool = False,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
        blocking_timeout: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> "AsyncLock":
        """An asyncio handle for the distributed lock ``name``: the
        arguments of :meth:`lock`, with ``task_local`` for ``thread_local``
        (see :class:`latchkey.AsyncLock`). Its waits never block the event
        loop, and a cancelled task gives back what it was granted.

        >>> async with client.async_lock("nightly-report", ttl=10):  # doctest: +SKIP
        ...     await run_report()
        """
        from .aio import AsyncLock

        return AsyncLock(
            self,
            name,
            ttl=ttl,
            auto_renew=auto_renew,
            reentrant=reentrant,
            fair=fair,
            task_local=task_local,
            on_lost=on_lost,
            blocking_timeout=blocking_timeout,
            retry_jitter=retry_jitter,
            renew_every=renew_every,
        )

    def semaphore(
        self,
        name: str,
        size: int,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> "Semaphore":
        """A handle for the distributed semaphore ``name`` of ``size``
        permits (1 to 1000000); see :class:`Semaphore`. The options are
        :meth:`lock`'s, less those only a lock has. Nothing is sent to
        Redis until permits are acquired. A Semaphore and a Lock of one
        name share no key.

        >>> pool = client.semaphore("db-connections", 3)  # doctest: +SKIP
        >>> with pool.acquire(2) as permit:      # or: with pool as permit (one)
        ...     print(pool.available(), permit.fencing_token)
        """
        from .semaphore import Semaphore

        return Semaphore(
            self,
            name,
            size,
            ttl=ttl,
            auto_renew=auto_renew,
            on_lost=on_lost,
            retry_jitter=retry_jitter,
            renew_every=renew_every,
        )

    def async_semaphore(
        self,
        name: str,
        size: int,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> "AsyncSemaphore":
        """An asyncio handle for the semaphore ``name``: :meth:`semaphore`'s
        arguments (see :class:`latchkey.AsyncSemaphore`). Its waits never
        block the event loop, and a cancelled task gives back what it was
        granted.

        >>> async with client.async_semaphore("db-connections", 3) as permit:  # doctest: +SKIP
        ...     await query(permit.fencing_token)
        """
        from .aio import AsyncSemaphore

        return AsyncSemaphore(
            self,
            name,
            size,
            ttl=ttl,
            auto_renew=auto_renew,
            on_lost=on_lost,
            retry_jitter=retry_jitter,
            renew_every=renew_every,
        )

    def election(
        self,
        name: str,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        renew_every: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
        fair: bool = False,
    ) -> "Election":
        """A handle for the election ``name``; see :class:`Election`. The
        options are :meth:`lock`'s for the leaders' leases, less those only
        a lock has. Nothing is sent to Redis until it is used. An Election
        and a Lock or Semaphore of one name share no key.

        >>> election = client.election("scheduler", ttl=10)  # doctest: +SKIP
        >>> with election.campaign(b"host-a:8080") as leadership:
        ...     print(election.leader(), leadership.term)
        """
        from .election import Election

        return Election(
            self,
            name,
            ttl=ttl,
            auto_renew=auto_renew,
            renew_every=renew_every,
            retry_jitter=retry_jitter,
            on_lost=on_lost,
            fair=fair,
        )

    def async_election(
        self,
        name: str,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        renew_every: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
        fair: bool = False,
    ) -> "AsyncElection":
        """An asyncio handle for the election ``name``: :meth:`election`'s
        arguments (see :class:`latchkey.AsyncElection`). Its waits never
        block the event loop, and a cancelled campaign resigns what it
        won.

        >>> election = client.async_election("scheduler")  # doctest: +SKIP
        >>> async with await election.campaign(b"host-a") as leadership:
        ...     await run_scheduler(leadership.term)
        """
        from .aio import AsyncElection

        return AsyncElection(
            self,
            name,
            ttl=ttl,
            auto_renew=auto_renew,
            renew_every=renew_every,
            retry_jitter=retry_jitter,
            on_lost=on_lost,
            fair=fair,
        )

    def multi_lock(
        self,
        names: Iterable[str],
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        fair: bool = False,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> "MultiLock":
        """A handle for the locks ``names``, taken all together or not at
        all, in the order of their names' bytes (so multi-locks of
        overlapping sets never deadlock); see :class:`MultiLock`. The
        options are :meth:`lock`'s for each lock (less ``reentrant``).
        Nothing is sent to Redis until it is acquired.

        >>> with client.multi_lock(["account:7", "account:3"]) as both:  # doctest: +SKIP
        ...     print(both.names, both.fencing_tokens)
        """
        from .multi import MultiLock

        return MultiLock(
            self,
            names,
            ttl=ttl,
            auto_renew=auto_renew,
            fair=fair,
            on_lost=on_lost,
            retry_jitter=retry_jitter,
            renew_every=renew_every,
        )

    def async_multi_lock(
        self,
        names: Iterable[str],
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        fair: bool = False,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
        retry_jitter: Optional[float] = None,
        renew_every: Optional[float] = None,
    ) -> "AsyncMultiLock":
        """An asyncio handle for the locks ``names``: :meth:`multi_lock`'s
        arguments (see :class:`latchkey.AsyncMultiLock`). Its waits never
        block the event loop, and a cancelled task gives back what it was
        granted.

        >>> async with client.async_multi_lock(["a", "b"]) as both:  # doctest: +SKIP
        ...     await move(both.fencing_tokens)
        """
        from .aio_multi import AsyncMultiLock

        return AsyncMultiLock(
            self,
            names,
            ttl=ttl,
            auto_renew=auto_renew,
            fair=fair,
            on_lost=on_lost,
            retry_jitter=retry_jitter,
            renew_every=renew_every,
        )

    def rwlock(
        self,
        name: str,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        renew_every: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
    ) -> "RwLock":
        """A handle for the read-write lock ``name``; see :class:`RwLock`.
        The options are :meth:`lock`'s for every hold's lease, less those
        only a lock has. Nothing is sent to Redis until it is used.

        >>> config = client.rwlock("config")  # doctest: +SKIP
        >>> with config.read() as hold:          # readers share; a writer waits
        ...     print(hold.fencing_token)
        """
        from .rwlock import RwLock

        return RwLock(
            self,
            name,
            ttl=ttl,
            auto_renew=auto_renew,
            renew_every=renew_every,
            retry_jitter=retry_jitter,
            on_lost=on_lost,
        )

    def async_rwlock(
        self,
        name: str,
        *,
        ttl: float = 30.0,
        auto_renew: bool = True,
        renew_every: Optional[float] = None,
        retry_jitter: Optional[float] = None,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
    ) -> "AsyncRwLock":
        """An asyncio handle for the read-write lock ``name``:
        :meth:`rwlock`'s arguments (see :class:`latchkey.AsyncRwLock`). Its
        waits never block the event loop, and a cancelled task gives back
        what it was granted.

        >>> async with await client.async_rwlock("config").read() as hold:  # doctest: +SKIP
        ...     await use(hold.fencing_token)
        """
        from ._rwlock_aio import AsyncRwLock

        return AsyncRwLock(
            self,
            name,
            ttl=ttl,
            auto_renew=auto_renew,
            renew_every=renew_every,
            retry_jitter=retry_jitter,
            on_lost=on_lost,
        )

    def locked(
        self,
        name: str,
        *,
        ttl: float = 30.0,
        timeout: Optional[float] = None,
        auto_renew: bool = True,
        fair: bool = False,
        on_lost: Optional[Callable[["LostLease"], object]] = None,
    ) -> Callable[[_F], _F]:
        """A decorator: every call of the function runs holding the lock
        ``name``, for plain functions (a :class:`Lock`, waiting on the
        calling thread) and ``async def`` functions (an
        :class:`AsyncLock`, waiting without blocking the event loop).

        ``name`` is a format string over the function's arguments, by
        parameter name, defaults applied: ``"invoice:{invoice_id}"``,
        ``"user:{user.id}"``. A name that refers to no parameter raises
        ``ValueError`` when the function is decorated. (Literal braces are
        written ``{{`` and ``}}``.)

        When the lock is held by someone else, the call waits for the
        release (woken by it, no polling) at most ``timeout`` seconds (None:
        for ever; 0: one attempt), then raises :class:`LockTimeout` without
        calling the function; it does not retry after that. Each call
        makes its own plain lock, so a decorated function that calls itself
        with the same name waits for itself (until ``timeout``). The lock
        is released when the function returns or raises; a release that
        finds the lease lost raises :class:`NotHeld`. ``ttl``,
        ``auto_renew``, ``fair`` and ``on_lost`` are :meth:`lock`'s.

        >>> @client.locked("invoice:{invoice_id}", ttl=10, timeout=5)  # doctest: +SKIP
        ... def bill(invoice_id: int) -> None: ...
        >>> @client.locked("user:{user.id}", timeout=0)  # doctest: +SKIP
        ... async def sync_user(user: User) -> None: ...
        """
        from ._decorate import locked

        return locked(
            self, name, ttl=ttl, timeout=timeout, auto_renew=auto_renew, fair=fair, on_lost=on_lost
        )

    # --- inspection ---------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """The prefix of every Redis key of this client."""
        out = c_char_p()
        err = c_void_p()
        handle = self._enter()
        try:
            status = lib.latchkey_client_prefix(handle, out, err)
            if status:
                raise_error(status, err)
            return (out.value or b"").decode("utf-8")
        finally:
            self._exit()

    def inspect(self, name: str) -> Optional[LockInfo]:
        """Who holds the lock ``name`` and who waits for it: a
        :class:`LockInfo` (its ``queue`` lists the waiters in the order a
        release hands the lock on), or None if nobody holds it. One round
        trip, one snapshot (Redlock: to every master, reporting the
        quorum's holder; its queue is always empty, Redlock's waiters do
        not queue). A free lock is None even in the rare moment it has
        queued waiters (a release has just handed it to the next one)."""
        name_b = _args.text(name, "name")
        info = _lib.LockInfoC()
        waiters = POINTER(_lib.QueuedWaiterC)()
        count = c_size_t()
        total = c_uint64()
        err = c_void_p()
        handle = self._enter()
        try:
            status = lib.latchkey_client_inspect_queue(
                handle, name_b, info, waiters, count, total, err
            )
        finally:
            self._exit()
        if status:
            raise_error(status, err)
        try:
            queue = [
                QueuedWaiter(
                    id=_decode(waiters[i].id) or "",
                    expires_in=waiters[i].expires_in_ms / 1000.0,
                )
                for i in range(count.value)
            ]
        finally:
            lib.latchkey_queued_waiters_free(waiters, count.value)
        if not info.locked:
            return None
        return LockInfo(
            owner_token=info.owner_token.decode("utf-8", "replace"),
            fencing_token=info.fencing_token,
            ttl=None if info.ttl_ms < 0 else info.ttl_ms / 1000.0,
            reentrant=info.reentrant,
            hold_count=info.hold_count,
            queue=queue,
            queue_len=total.value,
        )

    def inspect_masters(self, name: str) -> list[MasterState]:
        """Redlock: each master's view of the lock ``name`` (an empty list
        for other clients, or when nobody holds the lock)."""
        name_b = _args.text(name, "name")
        states = POINTER(_lib.MasterStateC)()
        count = c_size_t()
        err = c_void_p()
        handle = self._enter()
        try:
            status = lib.latchkey_client_inspect_masters(handle, name_b, states, count, err)
        finally:
            self._exit()
        if status:
            raise_error(status, err)
        result = []
        try:
            for i in range(count.value):
                s = states[i]
                result.append(
                    MasterState(
                        server=_decode(s.server) or "",
                        holder=_decode(s.holder),
                        fencing_token=s.fencing_token if s.has_fencing_token else None,
                        ttl=None if s.ttl_ms < 0 else s.ttl_ms / 1000.0,
                        error=_decode(s.error),
                    )
                )
        finally:
            lib.latchkey_master_states_free(states, count.value)
        return result

    def is_locked(self, name: str) -> bool:
        """Whether anyone holds the lock ``name`` (one round trip)."""
        name_b = _args.text(name, "name")
        out = c_bool()
        err = c_void_p()
        handle = self._enter()
        try:
            status = lib.latchkey_client_is_locked(handle, name_b, out, err)
        finally:
            self._exit()
        if status:
            raise_error(status, err)
        return bool(out.value)

    def force_unlock(self, name: str) -> bool:
        """Administrative unlock: deletes the lock ``name`` whoever holds it
        and wakes its waiters; the holder finds out at its next renewal (its
        lease is reported lost). Returns whether a lock was deleted."""
        name_b = _args.text(name, "name")
        out = c_bool()
        err = c_void_p()
        handle = self._enter()
        try:
            status = lib.latchkey_client_force_unlock(handle, name_b, out, err)
        finally:
            self._exit()
        if status:
            raise_error(status, err)
        return bool(out.value)

    # --- fencing ------------------------------------------------------------------

    def fenced_write(self, resource: str, token: int, value: Bytes) -> FencedWrite:
        """Writes ``value`` to the Redis resource ``resource`` only if
        ``token`` is at least the highest fencing token the resource has
        accepted, so a holder paused past its lease is refused. Returns
        ``(written, highest_token)``."""
        resource_b = _args.text(resource, "resource")
        token = _args.count(token, "token")
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        data = bytes(value)
        written = c_bool()
        highest = c_uint64()
        err = c_void_p()
        handle = self._enter()
        try:
            status = lib.latchkey_client_fenced_write(
                handle,
                resource_b,
                token,
                data,
                len(data),
                written,
                highest,
                err,
            )
        finally:
            self._exit()
        if status:
            raise_error(status, err)
        return FencedWrite(bool(written.value), highest.value)

    def fenced_read(self, resource: str) -> Optional[FencedValue]:
        """Reads a resource written by :meth:`fenced_write`:
        ``(fencing_token, value)``, or None if it does not exist."""
        resource_b = _args.text(resource, "resource")
        found = c_bool()
        token = c_uint64()
        data = c_void_p()
        length = c_size_t()
        err = c_void_p()
        handle = self._enter()
        try:
            status = lib.latchkey_client_fenced_read(
                handle,
                resource_b,
                found,
                token,
                data,
                length,
                err,
            )
        finally:
            self._exit()
        if status:
            raise_error(status, err)
        if not found.value:
            return None
        try:
            value = string_at(data.value, length.value) if data.value else b""
        finally:
            lib.latchkey_bytes_free(data, length.value)
        return FencedValue(token.value, value)


def _decode(raw: Optional[bytes]) -> Optional[str]:
    return None if raw is None else raw.decode("utf-8", "replace")
