"""Checking Python arguments before they reach C.

ctypes would silently cut a string at an embedded NUL, wrap a negative
number into a huge unsigned one, or turn NaN into something arbitrary; these
helpers refuse such values with a TypeError or ValueError that names the
argument. Ranges that the library itself checks (a ttl of at least 10 ms, a
name of at most 4096 bytes, a non-empty name) are left to the library, so
there is one source of truth and one message.
"""

from __future__ import annotations

import math
import os
from numbers import Real
from typing import Optional

U64_MAX = 2**64 - 1
# Longer waits than this (about 146 million years) are "for ever".
_FOREVER_MS = 2**62


def text(value: object, what: str) -> bytes:
    """A str argument as NUL-terminated UTF-8 for C.

    Messages give the position of the bad character, never the value: the
    value may be a URL with a password in it, or a password."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(
            f"{what} must not contain NUL characters (one at index {value.index(chr(0))})"
        )
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{what} is not encodable as UTF-8 ({e.reason}, at index {e.start})"
        ) from None


def path(value: object, what: str) -> bytes:
    """A file path (str or os.PathLike of str) as NUL-terminated UTF-8 for
    C. Bytes paths are refused: the library takes UTF-8 paths only."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        raise TypeError(f"{what} must be a str or os.PathLike of str, not bytes")
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str or os.PathLike, not {type(value).__name__}")
    return text(value, what)


def text_list(values: object, what: str) -> list[bytes]:
    """A non-string sequence of str arguments (URLs)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{what} must be a list of str, not {type(values).__name__}")
    return [text(v, f"{what}[{i}]") for i, v in enumerate(values)]


def seconds(value: object, what: str) -> float:
    """A duration in seconds: a real number (not a bool), not NaN."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    result = float(value)
    if math.isnan(result):
        raise ValueError(f"{what} must be a number of seconds, not NaN")
    return result


def _to_ms(value: float) -> int:
    # Round to the microsecond first so that 0.3 s is 300 ms, not 301.
    return min(math.ceil(round(value * 1000.0, 3)), U64_MAX)


def positive_ms(value: object, what: str) -> int:
    """A positive, finite duration in seconds, as whole milliseconds
    (rounded up, so a wait or lease is never shorter than asked)."""
    result = seconds(value, what)
    if result <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    if math.isinf(result):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return _to_ms(result)


def optional_positive_ms(value: object, what: str) -> Optional[int]:
    """As positive_ms, with None meaning "the library's default"."""
    return None if value is None else positive_ms(value, what)


def non_negative_ms(value: object, what: str) -> int:
    """A duration of zero or more seconds, finite, as milliseconds."""
    result = seconds(value, what)
    if result < 0:
        raise ValueError(f"{what} must be zero or more seconds, got {value!r}")
    if math.isinf(result):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return _to_ms(result)


def wait_ms(timeout: object) -> int:
    """An acquire timeout as the C ABI takes it: None, -1 or infinity wait
    for ever (-1); 0 makes one attempt; otherwise milliseconds, rounded up."""
    if timeout is None:
        return -1
    result = seconds(timeout, "timeout")
    if result == -1 or math.isinf(result) and result > 0:
        return -1
    if result < 0:
        raise ValueError(
            f"timeout must be zero or more seconds, or None to wait for ever; got {timeout!r}"
        )
    ms = math.ceil(round(result * 1000.0, 3))
    return -1 if ms >= _FOREVER_MS else ms


def count(value: object, what: str, *, maximum: int = U64_MAX) -> int:
    """A whole number >= 0 (not a bool) that fits C."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0 or value > maximum:
        raise ValueError(f"{what} must be between 0 and {maximum}, got {value}")
    return value
