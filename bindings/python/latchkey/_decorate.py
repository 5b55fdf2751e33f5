"""``@client.locked(name, ...)``: a function that runs holding a lock.

The lock name is a format string over the function's arguments, by
parameter name (``"invoice:{invoice_id}"``, ``"user:{user.id}"``,
``"{self.table}:{day}"``), with defaults applied; a name without fields is
used as it is. Every call makes its own lock (a plain one, owned by the
calling thread, or by the calling task for an ``async def`` function),
acquires it, runs the function and releases it.
"""

from __future__ import annotations

import functools
import inspect
import string
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, cast

from . import _args

if TYPE_CHECKING:
    from .client import Client
    from .lock import LostLease

_F = TypeVar("_F", bound=Callable[..., Any])


def _fields(name: str) -> set[str]:
    """The parameter names the format string `name` refers to."""
    roots: set[str] = set()
    for _, field, _, _ in string.Formatter().parse(name):
        if field is None:
            continue
        root = field.split(".", 1)[0].split("[", 1)[0]
        if not root.isidentifier():
            raise ValueError(
                f"lock name {name!r}: refer to the function's arguments by name "
                f"(as in {{invoice_id}}), not {{{field}}}"
            )
        roots.add(root)
    return roots


def locked(
    client: "Client",
    name: str,
    *,
    ttl: float = 30.0,
    timeout: Optional[float] = None,
    auto_renew: bool = True,
    fair: bool = False,
    on_lost: Optional[Callable[["LostLease"], object]] = None,
) -> Callable[[_F], _F]:
    """See :meth:`Client.locked`."""
    from .lock import Lock

    if not isinstance(name, str):
        raise TypeError(f"name must be a str (a format string), not {type(name).__name__}")
    fields = _fields(name)
    # Without fields, still the format string's text ("{{" is "{").
    fixed = name.format() if not fields else name
    _args.positive_ms(ttl, "ttl")
    _args.wait_ms(timeout)
    options: dict[str, Any] = dict(
        ttl=ttl, auto_renew=auto_renew, fair=fair, on_lost=on_lost, blocking_timeout=timeout
    )

    def decorate(fn: _F) -> _F:
        signature = inspect.signature(fn)
        unknown = sorted(fields - set(signature.parameters))
        if unknown:
            raise ValueError(
                f"lock name {name!r} refers to {', '.join(unknown)}, "
                f"which {fn.__qualname__} has no parameter for"
            )

        def lock_name(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if not fields:
                return fixed
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return name.format_map(bound.arguments)

        if inspect.iscoroutinefunction(fn):
            from .aio import AsyncLock

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with AsyncLock(client, lock_name(args, kwargs), **options):
                    return await fn(*args, **kwargs)

            return cast(_F, run_async)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with Lock(client, lock_name(args, kwargs), **options):
                return fn(*args, **kwargs)

        return cast(_F, run)

    return decorate
