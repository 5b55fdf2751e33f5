"""The exceptions of latchkey: one class per status of the C ABI, all under
:class:`LatchkeyError`.

The message of an exception raised for a failed library call is the
library's own message ("lock 'orders:42' is held by another owner; not
acquired within 1s"); the class says what kind of failure it was. Where it
helps, a class also derives from the matching built-in exception, so
``except TimeoutError`` or ``except ConnectionError`` work as expected.
"""

from __future__ import annotations

__all__ = [
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
]


class LatchkeyError(Exception):
    """Base class of every latchkey failure.

    ``status`` is the C ABI's ``latchkey_status`` number of the failure
    (``-1`` for failures detected by the binding itself).
    """

    status: int = -1

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message


class InvalidArgument(LatchkeyError, ValueError):
    """The library refused an argument: an empty or too long name, a ttl out
    of range, a bad URL (``LATCHKEY_INVALID_ARGUMENT``)."""

    status = 1


class LockTimeout(LatchkeyError, TimeoutError):
    """The lock was still held by another owner at the deadline
    (``LATCHKEY_TIMEOUT``). A Redis that does not answer within the command
    timeout raises :class:`ConnectionFailed`, not this."""

    status = 2


class NotHeld(LatchkeyError):
    """A release or extend found that this owner does not hold the lock: it
    expired, was force-unlocked, or was already released
    (``LATCHKEY_NOT_HELD``)."""

    status = 3


class LostError(LatchkeyError):
    """The lease was lost while it was supposed to be held: renewal found
    the lock gone or taken, or could not confirm it in time
    (``LATCHKEY_LOST``)."""

    status = 4


class Cancelled(LatchkeyError):
    """A wait was cancelled (``LATCHKEY_CANCELLED``)."""

    status = 5


class ConnectionFailed(LatchkeyError, ConnectionError):
    """Redis could not be reached, the connection broke, or Redis did not
    answer within the command timeout (``LATCHKEY_CONNECTION``)."""

    status = 6


class ServerError(LatchkeyError):
    """Redis answered with an error (``LATCHKEY_SERVER``)."""

    status = 7


class InternalPanic(LatchkeyError):
    """A bug inside latchkey was caught at the C boundary; the library stays
    usable (``LATCHKEY_PANIC``)."""

    status = 8


class NoQuorum(LatchkeyError):
    """Redlock: fewer than N/2+1 masters answered, so the outcome is unknown,
    or too few of them count yet, being younger than the restart delay (the
    message says so) (``LATCHKEY_NO_QUORUM``)."""

    status = 9


class AuthenticationFailed(LatchkeyError, PermissionError):
    """Redis refused the credentials: a wrong user name or password, or none
    given to a server that requires one. Retrying will not help; fix the URL
    (``LATCHKEY_AUTH``)."""

    status = 10


class ClientClosed(LatchkeyError):
    """The client was closed (:meth:`Client.close`): an acquire that was
    waiting, or that started afterwards, raises this (``LATCHKEY_CLOSED``)."""

    status = 11
