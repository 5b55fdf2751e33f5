"""Finding and loading liblatchkey, and the ctypes prototypes of its C ABI.

Everything that knows about C lives here: the shared library, the argument
and result types of every function the binding calls (bound once, at
import), the status codes, and the conversion of a failed call's
``latchkey_error`` into a Python exception.

The library is looked for, in order:

1. the file named by the environment variable ``LATCHKEY_LIBRARY`` (a
   source checkout: ``make python-test`` sets it to the repository's
   ``target/release/liblatchkey.so``);
2. the copy inside this package, which ``pip install`` builds and bundles
   (``latchkey/liblatchkey.abi3.so``), or one put there by hand
   (``latchkey/liblatchkey.so``);
3. a library installed on the system (``make install``), as
   ``ctypes.util.find_library("latchkey")`` finds it.

Nothing else: never a ``target/release`` found by walking up from the
package, which would load whatever build happens to sit above a virtualenv.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, NoReturn, Optional

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

__all__ = ["lib", "library_path", "raise_error"]

# --- statuses (include/latchkey.h: fixed numbers, never reused) ---------------

OK = 0
INVALID_ARGUMENT = 1
TIMEOUT = 2
NOT_HELD = 3
LOST = 4
CANCELLED = 5
CONNECTION = 6
SERVER = 7
PANIC = 8
NO_QUORUM = 9
AUTH = 10
CLOSED = 11

_EXCEPTIONS: dict[int, type[LatchkeyError]] = {
    INVALID_ARGUMENT: InvalidArgument,
    TIMEOUT: LockTimeout,
    NOT_HELD: NotHeld,
    LOST: LostError,
    CANCELLED: Cancelled,
    CONNECTION: ConnectionFailed,
    SERVER: ServerError,
    PANIC: InternalPanic,
    NO_QUORUM: NoQuorum,
    AUTH: AuthenticationFailed,
    CLOSED: ClientClosed,
}

OWNER_TOKEN_SIZE = 33


# --- finding the library ---------------------------------------------------------

if sys.platform == "darwin":
    _FILE_NAME = "liblatchkey.dylib"
elif sys.platform == "win32":
    _FILE_NAME = "latchkey.dll"
else:
    _FILE_NAME = "liblatchkey.so"
# What `pip install` bundles (setup.py: setuptools-rust names the library
# like a stable-ABI extension module; it is loaded with ctypes all the same).
_BUNDLED_NAME = "liblatchkey.pyd" if sys.platform == "win32" else "liblatchkey.abi3.so"

_HOW_TO_BUILD = (
    "install the package with `pip install ./bindings/python` at the root of "
    "the latchkey repository (it builds and bundles the library), or build it "
    "with `cargo build --release` there and set LATCHKEY_LIBRARY to the path "
    "of target/release/{name}"
)


class LibraryNotFound(ImportError):
    """liblatchkey could not be found or loaded; the message says where it
    was looked for and how to build it or point to it."""


def _candidates() -> list[Path]:
    """Where the library is looked for, in order (see the module docs)."""
    package_dir = Path(__file__).resolve().parent
    return [package_dir / _BUNDLED_NAME, package_dir / _FILE_NAME]


def _find_library() -> Path:
    how = _HOW_TO_BUILD.format(name=_FILE_NAME)
    explicit = os.environ.get("LATCHKEY_LIBRARY")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LibraryNotFound(
                f"LATCHKEY_LIBRARY is set to {explicit!r}, which is not a file; "
                f"point it to {_FILE_NAME}, or unset it and {how}"
            )
        return path
    looked = _candidates()
    for path in looked:
        if path.is_file():
            return path
    # Last, a library installed on the system (`make install`).
    installed = ctypes.util.find_library("latchkey")
    if installed:
        return Path(installed)
    shown = ", ".join(str(p) for p in looked)
    raise LibraryNotFound(
        f"latchkey: cannot find {_FILE_NAME} (LATCHKEY_LIBRARY is not set; "
        f"looked at {shown} and the system's library path); {how}"
    )


def _load() -> tuple[ctypes.CDLL, Path]:
    path = _find_library()
    try:
        # CDLL (not PyDLL): every call releases the GIL while it runs.
        return ctypes.CDLL(str(path)), path
    except OSError as e:
        raise LibraryNotFound(
            f"latchkey: cannot load {path}: {e}; rebuild it with "
            "`cargo build --release` (or reinstall the package) or set "
            "LATCHKEY_LIBRARY to a working copy"
        ) from e


lib, library_path = _load()


# --- types ---------------------------------------------------------------------------

# Opaque handles travel as c_void_p (Python ints); out-parameters as
# POINTER(c_void_p). A `latchkey_error *` is a c_void_p too.
_H = c_void_p
_OUT = POINTER(c_void_p)
_ERR = POINTER(c_void_p)


class LockInfoC(Structure):
    """struct latchkey_lock_info."""

    _fields_ = [
        ("locked", c_bool),
        ("owner_token", c_char * OWNER_TOKEN_SIZE),
        ("fencing_token", c_uint64),
        ("ttl_ms", c_int64),
        ("reentrant", c_bool),
        ("hold_count", c_uint64),
    ]


class MasterStateC(Structure):
    """struct latchkey_master_state."""

    _fields_ = [
        ("server", c_char_p),
        ("holder", c_char_p),
        ("has_fencing_token", c_bool),
        ("fencing_token", c_uint64),
        ("ttl_ms", c_int64),
        ("error", c_char_p),
    ]


class QueuedWaiterC(Structure):
    """struct latchkey_queued_waiter."""

    _fields_ = [
        ("id", c_char_p),
        ("expires_in_ms", c_uint64),
    ]


LOST_CALLBACK = CFUNCTYPE(None, c_void_p, c_char_p, c_char_p, c_uint64, c_char_p)
USER_FREE = CFUNCTYPE(None, c_void_p)


def _proto(name: str, restype: Any, *argtypes: Any) -> None:
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise LibraryNotFound(
            f"latchkey: {library_path} has no function {name}: it is older than "
            "this Python package; rebuild it with `cargo build --release`"
        ) from None
    fn.restype = restype
    fn.argtypes = list(argtypes)


_S = c_int32  # latchkey_status

_PROTOTYPES: list[tuple[str, Any, list[Any]]] = [
    ("latchkey_status_name", c_char_p, [c_int32]),
    ("latchkey_error_status", _S, [_H]),
    ("latchkey_error_message", c_char_p, [_H]),
    ("latchkey_error_is_busy", c_bool, [_H]),
    ("latchkey_error_free", None, [_H]),
    ("latchkey_version", c_char_p, []),
    ("latchkey_debug_panic", _S, [_ERR]),
    # client options
    ("latchkey_client_options_new", _S, [_OUT, _ERR]),
    ("latchkey_client_options_free", None, [_H]),
    ("latchkey_client_options_set_connect_timeout_ms", _S, [_H, c_uint64, _ERR]),
    ("latchkey_client_options_set_command_timeout_ms", _S, [_H, c_uint64, _ERR]),
    ("latchkey_client_options_set_prefix", _S, [_H, c_char_p, _ERR]),
    ("latchkey_client_options_set_pool_size", _S, [_H, c_size_t, _ERR]),
    ("latchkey_client_options_set_spin_us", _S, [_H, c_uint64, _ERR]),
    ("latchkey_client_options_set_wait_for_replicas", _S, [_H, c_size_t, c_uint64, _ERR]),
    ("latchkey_client_options_set_master_password", _S, [_H, c_char_p, _ERR]),
    ("latchkey_client_options_set_master_db", _S, [_H, c_int64, _ERR]),
    ("latchkey_client_options_set_redlock_restart_delay_ms", _S, [_H, c_uint64, _ERR]),
    ("latchkey_client_options_set_tls_ca_file", _S, [_H, c_char_p, _ERR]),
    ("latchkey_client_options_set_tls_client_cert", _S, [_H, c_char_p, c_char_p, _ERR]),
    ("latchkey_client_options_set_tls_server_name", _S, [_H, c_char_p, _ERR]),
    ("latchkey_client_options_set_tls_insecure_skip_verify", _S, [_H, c_bool, _ERR]),
    # clients
    ("latchkey_client_open", _S, [c_char_p, _H, _OUT, _ERR]),
    ("latchkey_client_open_redlock", _S, [POINTER(c_char_p), c_size_t, _H, _OUT, _ERR]),
    (
        "latchkey_client_open_sentinel",
        _S,
        [POINTER(c_char_p), c_size_t, c_char_p, _H, _OUT, _ERR],
    ),
    ("latchkey_client_open_cluster", _S, [POINTER(c_char_p), c_size_t, _H, _OUT, _ERR]),
    ("latchkey_client_free", None, [_H]),
    ("latchkey_client_close", _S, [_H, _ERR]),
    ("latchkey_client_prefix", _S, [_H, POINTER(c_char_p), _ERR]),
    ("latchkey_client_inspect", _S, [_H, c_char_p, POINTER(LockInfoC), _ERR]),
    ("latchkey_client_is_locked", _S, [_H, c_char_p, POINTER(c_bool), _ERR]),
    ("latchkey_client_force_unlock", _S, [_H, c_char_p, POINTER(c_bool), _ERR]),
    (
        "latchkey_client_inspect_masters",
        _S,
        [_H, c_char_p, POINTER(POINTER(MasterStateC)), POINTER(c_size_t), _ERR],
    ),
    ("latchkey_master_states_free", None, [POINTER(MasterStateC), c_size_t]),
    (
        "latchkey_client_inspect_queue",
        _S,
        [
            _H,
            c_char_p,
            POINTER(LockInfoC),
            POINTER(POINTER(QueuedWaiterC)),
            POINTER(c_size_t),
            POINTER(c_uint64),
            _ERR,
        ],
    ),
    ("latchkey_queued_waiters_free", None, [POINTER(QueuedWaiterC), c_size_t]),
    (
        "latchkey_client_fenced_write",
        _S,
        [_H, c_char_p, c_uint64, c_char_p, c_size_t, POINTER(c_bool), POINTER(c_uint64), _ERR],
    ),
    (
        "latchkey_client_fenced_read",
        _S,
        [
            _H,
            c_char_p,
            POINTER(c_bool),
            POINTER(c_uint64),
            POINTER(c_void_p),
            POINTER(c_size_t),
            _ERR,
        ],
    ),
    ("latchkey_bytes_free", None, [c_void_p, c_size_t]),
    # lock options
    ("latchkey_lock_options_new", _S, [_OUT, _ERR]),
    ("latchkey_lock_options_free", None, [_H]),
    ("latchkey_lock_options_set_ttl_ms", _S, [_H, c_uint64, _ERR]),
    ("latchkey_lock_options_set_auto_renew", _S, [_H, c_bool, _ERR]),
    ("latchkey_lock_options_set_reentrant", _S, [_H, c_bool, _ERR]),
    ("latchkey_lock_options_set_fair", _S, [_H, c_bool, _ERR]),
    ("latchkey_lock_options_set_retry_jitter_ms", _S, [_H, c_uint64, _ERR]),
    ("latchkey_lock_options_set_renew_every_ms", _S, [_H, c_uint64, _ERR]),
    ("latchkey_lock_options_set_on_lost", _S, [_H, LOST_CALLBACK, c_void_p, USER_FREE, _ERR]),
    # locks and guards
    ("latchkey_lock_new", _S, [_H, c_char_p, _H, _OUT, _ERR]),
    ("latchkey_lock_free", None, [_H]),
    ("latchkey_lock_acquire", _S, [_H, c_int64, _H, _OUT, _ERR]),
    ("latchkey_lock_try_acquire", _S, [_H, _OUT, _ERR]),
    ("latchkey_guard_release", _S, [_H, _ERR]),
    ("latchkey_guard_free", None, [_H]),
    ("latchkey_guard_extend", _S, [_H, c_uint64, _ERR]),
    ("latchkey_guard_extend_by", _S, [_H, c_uint64, _ERR]),
    ("latchkey_guard_check", _S, [_H, _ERR]),
    ("latchkey_guard_lost", _S, [_H, POINTER(c_bool), _ERR]),
    ("latchkey_guard_remaining_ms", _S, [_H, POINTER(c_uint64), _ERR]),
    ("latchkey_guard_fencing_token", _S, [_H, POINTER(c_uint64), _ERR]),
    ("latchkey_guard_owner_token", _S, [_H, POINTER(c_char_p), _ERR]),
    ("latchkey_guard_name", _S, [_H, POINTER(c_char_p), _ERR]),
    ("latchkey_guard_confirm", _S, [_H, POINTER(c_bool), _ERR]),
    (
        "latchkey_guard_fenced_write",
        _S,
        [_H, c_char_p, c_char_p, c_size_t, POINTER(c_bool), POINTER(c_uint64), _ERR],
    ),
    # multi-locks (latchkey_multi_guard: one guard over several locks)
    ("latchkey_multi_lock_new", _S, [_H, POINTER(c_char_p), c_size_t, _H, _OUT, _ERR]),
    ("latchkey_multi_lock_free", _S, [_H]),
    ("latchkey_multi_lock_acquire", _S, [_H, c_int64, _H, _OUT, _ERR]),
    ("latchkey_multi_lock_try_acquire", _S, [_H, _OUT, _ERR]),
    ("latchkey_multi_guard_count", _S, [_H, POINTER(c_size_t), _ERR]),
    ("latchkey_multi_guard_fencing_token", _S, [_H, c_size_t, POINTER(c_uint64), _ERR]),
    ("latchkey_multi_guard_check", _S, [_H, _ERR]),
    ("latchkey_multi_guard_release", _S, [_H, _ERR]),
    ("latchkey_multi_guard_free", _S, [_H]),
    # semaphores (each hold is a latchkey_guard: the guard calls above)
    ("latchkey_semaphore_new", _S, [_H, c_char_p, c_uint32, _H, _OUT, _ERR]),
    ("latchkey_semaphore_free", _S, [_H]),
    ("latchkey_semaphore_acquire", _S, [_H, c_uint32, c_int64, _H, _OUT, _ERR]),
    ("latchkey_semaphore_try_acquire", _S, [_H, c_uint32, _OUT, _ERR]),
    ("latchkey_semaphore_available", _S, [_H, POINTER(c_uint32), _ERR]),
    ("latchkey_semaphore_force_release_all", _S, [_H, POINTER(c_bool), _ERR]),
    # elections (a leadership is a latchkey_guard: the guard calls above)
    ("latchkey_election_new", _S, [_H, c_char_p, _H, _OUT, _ERR]),
    ("latchkey_election_free", _S, [_H]),
    ("latchkey_election_campaign", _S, [_H, c_char_p, c_size_t, c_int64, _H, _OUT, _ERR]),
    (
        "latchkey_election_leader",
        _S,
        [_H, POINTER(c_bool), POINTER(c_uint64), POINTER(c_void_p), POINTER(c_size_t), _ERR],
    ),
    (
        "latchkey_election_observe",
        _S,
        [
            _H,
            c_uint64,
            c_int64,
            _H,
            POINTER(c_bool),
            POINTER(c_uint64),
            POINTER(c_void_p),
            POINTER(c_size_t),
            _ERR,
        ],
    ),
    # read-write locks (every hold is a latchkey_guard: the guard calls above)
    ("latchkey_rwlock_new", _S, [_H, c_char_p, _H, _OUT, _ERR]),
    ("latchkey_rwlock_free", _S, [_H]),
    ("latchkey_rwlock_read", _S, [_H, c_int64, _H, _OUT, _ERR]),
    ("latchkey_rwlock_write", _S, [_H, c_int64, _H, _OUT, _ERR]),
    ("latchkey_rwlock_try_read", _S, [_H, _OUT, _ERR]),
    ("latchkey_rwlock_try_write", _S, [_H, _OUT, _ERR]),
    # cancel handles
    ("latchkey_cancel_new", _S, [_OUT, _ERR]),
    ("latchkey_cancel_free", None, [_H]),
    ("latchkey_cancel_trigger", _S, [_H, _ERR]),
    ("latchkey_cancel_reset", _S, [_H, _ERR]),
    ("latchkey_cancel_is_triggered", _S, [_H, POINTER(c_bool), _ERR]),
]
for _name, _res, _args in _PROTOTYPES:
    _proto(_name, _res, *_args)

# Prebound entry points, so a call is one global lookup.
status_name = lib.latchkey_status_name
error_status = lib.latchkey_error_status
error_message = lib.latchkey_error_message
error_free = lib.latchkey_error_free


def take_error(status: int, err: c_void_p) -> LatchkeyError:
    """The exception for a failed call: its class from the status, its
    message from the call's own ``latchkey_error`` (which is freed)."""
    message: Optional[bytes] = None
    if err.value:
        try:
            message = error_message(err)
        finally:
            error_free(err)
            err.value = None
    name = status_name(status).decode("utf-8", "replace")
    text = message.decode("utf-8", "replace") if message else name
    cls = _EXCEPTIONS.get(status)
    if cls is None:
        exc = LatchkeyError(f"{text} (status {status}: {name})")
        exc.status = status
        return exc
    return cls(text)


def raise_error(status: int, err: c_void_p) -> NoReturn:
    """Raises the exception of a failed call (see take_error)."""
    raise take_error(status, err)


def error_is_busy(err: c_void_p) -> bool:
    """Whether a call's error is a "not now" the deployment answered (see
    ``latchkey_error_is_busy``): a waiting acquire waits it out."""
    return bool(err.value) and bool(lib.latchkey_error_is_busy(err))


def discard_error(err: c_void_p) -> None:
    """Frees a call's error without looking at it."""
    if err.value:
        error_free(err)
        err.value = None


def version() -> str:
    """The version of the loaded library ("MAJOR.MINOR.PATCH")."""
    raw: bytes = lib.latchkey_version()
    return raw.decode("ascii", "replace")
