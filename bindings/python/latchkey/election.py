"""Leader election: an :class:`Election` that candidates campaign in, the
:class:`Leadership` a winning campaign returns, and the :class:`Leader`
observers see.

It is the library's election (``latchkey_election_*``): one candidate at a
time leads, with a term that increases with every leadership and is the
fencing token of its hold; the lease is renewed while it leads, its loss
is reported as a lock's is, and a leader that dies is replaced once its
lease ends. A leadership is an ordinary C guard whose release resigns, so
a :class:`Leadership` offers a Permit's per-hold calls (``lock._Slot``
through ``_hold.OwnHold``), and an Election makes its holds as a
Semaphore does (``_hold.HoldSource``): the same rules for threads,
garbage collection, signals, fork, exit and close (see _hold.py).
"""

from __future__ import annotations

import threading
from ctypes import c_bool, c_size_t, c_uint64, c_void_p, string_at
from dataclasses import dataclass
from typing import Callable, Iterator, NoReturn, Optional, Union

from . import _args
from . import cancel as _cancel
from ._hold import HoldSource, OwnHold
from ._lib import CANCELLED, discard_error, lib, raise_error
from .cancel import Cancel, Wait
from .client import Client
from .errors import Cancelled
from .lock import LostLease, _lock_options, _Slot, _wait_on_helper

__all__ = ["Election", "Leadership", "Leader", "MAX_LEADER_VALUE"]

MAX_LEADER_VALUE = 64 * 1024
"""The largest value a candidate may announce, in bytes (the library's
limit)."""

_campaign = lib.latchkey_election_campaign
_leader = lib.latchkey_election_leader
_observe = lib.latchkey_election_observe
_election_free = lib.latchkey_election_free
_bytes_free = lib.latchkey_bytes_free
_get_ident = threading.get_ident
_main_thread = threading.main_thread

Value = Union[bytes, bytearray, memoryview, str]
"""What a candidate announces: bytes, or a str (sent as UTF-8)."""


def _free_election(handle: int) -> None:
    _election_free(handle)


def _value_bytes(value: object) -> bytes:
    if isinstance(value, str):
        return _args.text(value, "value")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"value must be bytes or str, not {type(value).__name__}")


@dataclass(frozen=True)
class Leader:
    """Who leads an election, as :meth:`Election.leader` and
    :meth:`Election.observe` report it. Leaders compare by term."""

    term: int
    """Its term: the fencing token of its hold, higher for every new
    leadership (what :attr:`Leadership.term` says)."""
    value: bytes
    """The value it announced."""


class _Reading:
    """The out-parameters of one latchkey_election_leader or _observe call.
    The value buffer is the library's until it is taken or freed; when a
    wait on a helper thread is abandoned (Ctrl-C), whichever of the two
    threads comes last frees it."""

    __slots__ = ("found", "term", "value", "length", "err", "_mutex", "_abandoned", "_done")

    def __init__(self) -> None:
        self.found = c_bool()
        self.term = c_uint64()
        self.value = c_void_p()
        self.length = c_size_t()
        self.err = c_void_p()
        self._mutex = threading.Lock()
        self._abandoned = False
        self._done = False

    def _free(self) -> None:
        if self.value.value:
            _bytes_free(self.value, self.length.value)
            self.value.value = None
        discard_error(self.err)

    def late(self) -> None:
        """On the helper thread, after the call."""
        with self._mutex:
            self._done = True
            if self._abandoned:
                self._free()

    def abandon(self) -> None:
        """On the waiting thread, when it gives up (Ctrl-C)."""
        with self._mutex:
            self._abandoned = True
            if self._done:
                self._free()

    def take(self) -> Optional[Leader]:
        """The leader read (None: nobody); frees the buffer."""
        try:
            if not self.found.value:
                return None
            data = string_at(self.value.value, self.length.value) if self.value.value else b""
            return Leader(int(self.term.value), data)
        finally:
            self._free()


class Leadership(OwnHold):
    """This candidate leads: what :meth:`Election.campaign` returns.

    ``term`` is this leadership's fencing token (higher than every earlier
    leadership's): pass it to what the leader writes to, and call
    :meth:`check` before each piece of a leader's work (it raises
    :class:`LostError` once the lease is lost: a leader that was paused past
    its lease must stop). A context manager that resigns on exit. Dropping
    it does not resign: it leads (and is renewed) until :meth:`resign`,
    its loss, its client's close, or interpreter exit. ``extend``,
    ``check``, ``owned``, ``lost``, ``token`` and ``remaining`` concern
    its lease, as for a :class:`Permit`.

    >>> with election.campaign(b"10.0.0.7:8080") as leadership:  # doctest: +SKIP
    ...     while serving:
    ...         leadership.check()
    ...         client.fenced_write("schedule", leadership.term, plan())
    """

    __slots__ = ("_value",)

    _noun = "leadership"

    def __init__(self, election: "Election", slot: _Slot, value: bytes) -> None:
        super().__init__(election, slot)
        self._value = value

    def resign(self) -> None:
        """Gives the leadership up: the next candidate leads at once, and
        observers are told. Raises :class:`NotHeld` if it had been lost
        (or resigned already); Redis failures raise too (the lease then runs
        out at its ttl). After any outcome it no longer leads."""
        self._release()

    @property
    def term(self) -> int:
        """This leadership's term: its fencing token."""
        return self.fencing_token

    @property
    def value(self) -> bytes:
        """The value announced."""
        return self._value

    @property
    def name(self) -> str:
        """The election's name."""
        return self.election.name

    @property
    def election(self) -> "Election":
        """The Election it was won through."""
        source = self._source
        assert isinstance(source, Election)
        return source

    def __repr__(self) -> str:
        state = "resigned" if self._slot.released else "leading"
        return f"<latchkey.Leadership {self.name!r} value={self._value!r} {state}>"


class Election(HoldSource):
    """A named election, shared by every process (in any language) that
    uses the name. Make it with :meth:`Client.election`.

    Candidates :meth:`campaign` with a value (an address, an id); one at a
    time leads, with a :class:`Leadership` whose term increases with every
    new leadership. Observers read the leader with :meth:`leader` and wait
    for the next change with :meth:`observe` (or iterate :meth:`watch`),
    woken by announcements and resignations (no polling) and by a dead
    leader's lease end.

    Options are :class:`Lock`'s, less ``reentrant``, ``thread_local`` and
    ``blocking_timeout``; ``ttl`` bounds how long a dead leader blocks its
    successor. Elections are refused on Redlock clients (their masters
    cannot hold one announcement): making one raises
    :class:`InvalidArgument` there.

    An Election is thread-safe; blocking calls release the GIL; a wait can
    be cancelled with a :class:`Cancel` and, on the main thread, by Ctrl-C.

    >>> election = client.election("scheduler", ttl=10)  # doctest: +SKIP
    >>> with election.campaign(b"host-a:8080") as leadership:
    ...     run_scheduler(leadership)
    """

    _kind = "Election"

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
        options = _lock_options(ttl_ms, auto_renew, None, bool(fair), jitter_ms, renew_ms, on_lost)
        self._open(
            client,
            options,
            lambda c, o, out, err: lib.latchkey_election_new(c, name_b, o, out, err),
            _free_election,
        )

    def _describe(self) -> str:
        return f"the leadership of election {self._name!r}"

    # --- candidates ---------------------------------------------------------------

    def campaign(
        self,
        value: Value = b"",
        timeout: Optional[float] = None,
        *,
        cancel: Optional[Cancel] = None,
    ) -> Leadership:
        """Blocks until this candidate leads and has announced ``value``
        (bytes, or a str sent as UTF-8; at most :data:`MAX_LEADER_VALUE`
        bytes), waiting without polling at most ``timeout`` seconds (None or
        -1: for ever; 0: one attempt). Returns the :class:`Leadership`.
        Raises :class:`LockTimeout` if another led throughout,
        :class:`Cancelled` if ``cancel`` was cancelled (from any thread),
        :class:`InvalidArgument` for a value that is too long,
        KeyboardInterrupt for Ctrl-C during a wait on the main thread; an
        interrupted or cancelled campaign leaves nothing held (a
        leadership won in the same moment resigns)."""
        data = _value_bytes(value)
        ms = _args.wait_ms(timeout)
        slot = _Slot()
        try:
            self._campaign_into(slot, data, ms, cancel)
            return Leadership(self, slot, data)
        except BaseException:
            self._abandon(slot)
            raise

    def _campaign_into(self, slot: _Slot, data: bytes, ms: int, cancel: Optional[Cancel]) -> None:
        guard = slot.guard
        size = len(data)

        def attempt(handle: int, wait_ms: int, cancel_handle: Optional[int], err: c_void_p) -> int:
            return int(_campaign(handle, data, size, wait_ms, cancel_handle, guard, err))

        self._acquire_into(slot, ms, cancel, attempt)

    # --- observers ----------------------------------------------------------------

    def leader(self) -> Optional[Leader]:
        """Who leads now: a :class:`Leader`, or None if nobody does (a
        leader elected a moment ago that has not announced itself yet is
        not reported). One round trip."""
        out = _Reading()
        handle = self._handle.enter(self._kind)
        try:
            status = int(_leader(handle, out.found, out.term, out.value, out.length, out.err))
        finally:
            self._handle.exit()
        if status:
            raise_error(status, out.err)
        return out.take()

    def observe(
        self,
        known: Optional[Leader] = None,
        timeout: Optional[float] = None,
        *,
        cancel: Optional[Cancel] = None,
    ) -> Optional[Leader]:
        """Waits until the leader differs from ``known`` (None: nobody;
        leaders compare by term) and returns the new one (None: nobody
        leads now). Woken by an announcement or a resignation, and by a
        dead leader's lease end. Waits at most ``timeout`` seconds (None or
        -1: for ever) and then raises :class:`LockTimeout`;
        :class:`Cancelled` if ``cancel`` was cancelled, :class:`ClientClosed`
        once the client is closed, KeyboardInterrupt for Ctrl-C on the main
        thread.

        >>> known = election.leader()  # doctest: +SKIP
        >>> while True:
        ...     known = election.observe(known)
        ...     route_to(known.value if known else None)
        """
        if known is not None and not isinstance(known, Leader):
            raise TypeError(f"known must be a latchkey.Leader or None, not {type(known).__name__}")
        if cancel is not None and not isinstance(cancel, Cancel):
            raise TypeError(f"cancel must be a latchkey.Cancel, not {type(cancel).__name__}")
        known_term = 0 if known is None else known.term
        ms = _args.wait_ms(timeout)
        if (cancel is not None and cancel.cancelled) or _cancel.shutting_down():
            raise Cancelled(f"observing election {self._name!r}: cancelled")
        out = _Reading()
        handle = self._handle.enter(self._kind)
        try:

            def call(cancel_handle: Optional[int]) -> int:
                return int(
                    _observe(
                        handle,
                        known_term,
                        ms,
                        cancel_handle,
                        out.found,
                        out.term,
                        out.value,
                        out.length,
                        out.err,
                    )
                )

            if _get_ident() == _main_thread().ident:
                what = f"election {self._name!r}"
                try:
                    status = _wait_on_helper(
                        what, self._kind, self._handle, call, out.late, Wait(cancel, users=2)
                    )
                except BaseException:
                    out.abandon()
                    raise
            else:
                wait = Wait(cancel)
                try:
                    status = call(wait.handle)
                finally:
                    wait.close()
                if status == CANCELLED:
                    _cancel.park_if_exiting()
        finally:
            self._handle.exit()
        if status:
            raise_error(status, out.err)
        return out.take()

    def watch(self, timeout_per_change: Optional[float] = None) -> Iterator[Optional[Leader]]:
        """Yields who leads now, then every change (None: nobody leads),
        for ever: :meth:`leader`, then :meth:`observe` in a loop. A change
        that does not come within ``timeout_per_change`` seconds (None:
        wait for ever) raises :class:`LockTimeout` out of the loop.

        >>> for leader in election.watch():  # doctest: +SKIP
        ...     print("now leading:", leader and leader.value)
        """
        known = self.leader()
        yield known
        while True:
            known = self.observe(known, timeout_per_change)
            yield known

    @property
    def name(self) -> str:
        """The election's name."""
        return self._name

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a latchkey.Election cannot be pickled or copied: "
            "make a new Client and Election in the other process"
        )

    def __repr__(self) -> str:
        return f"<latchkey.Election {self._name!r} holds={self.holds}>"
