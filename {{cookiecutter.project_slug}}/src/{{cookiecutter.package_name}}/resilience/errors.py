"""Which errors are the infrastructure's fault, and which of those are worth another attempt."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import exc as sa_exc

from .breaker import BreakerOpen
from .bulkhead import BulkheadFull
from .deadline import DeadlineExceeded

# SQLSTATEs that a second attempt may cure: serialization failure, deadlock, and the server
# shutting down or refusing connections for now.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})
_connection_errors: tuple[type[Exception], ...] = (
    ConnectionError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
)
_timeouts: tuple[type[Exception], ...] = (TimeoutError, asyncpg.QueryCanceledError, sa_exc.TimeoutError)


def register_driver_errors(*, connection: tuple[type[Exception], ...], timeouts: tuple[type[Exception], ...]) -> None:
    """Teach the classifier another client's errors; an optional part calls this when it is imported."""
    global _connection_errors, _timeouts  # a registry filled once, at import
    _connection_errors = (*_connection_errors, *connection)
    _timeouts = (*_timeouts, *timeouts)


def driver_errors() -> tuple[type[Exception], ...]:
    """Every error that means a dependency failed, for the handlers that answer 503."""
    return (*_connection_errors, *_timeouts)


def _root(exc: BaseException) -> BaseException:
    """The driver's error behind SQLAlchemy's wrapper."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
        return getattr(orig, "__cause__", None) or orig
    return exc


def is_failure(exc: BaseException) -> bool:
    """An infrastructure error that counts against the breaker: connection loss, timeouts, pool timeouts.

    A caller's error (4xx, validation, integrity) never counts, nor does cancellation or our own refusals.
    """
    if isinstance(exc, (asyncio.CancelledError, BreakerOpen, BulkheadFull, DeadlineExceeded)):
        return False
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    root = _root(exc)
    if isinstance(root, (*_connection_errors, *_timeouts)):
        return True
    return getattr(root, "sqlstate", None) in _TRANSIENT_SQLSTATES


def is_local_wait(exc: BaseException) -> bool:
    """A wait in this process that ran out (the connection pool's queue): the dependency was never asked, so its
    breaker does not count it. A hung server still opens the breaker, by the calls that hold its connections."""
    return isinstance(exc, sa_exc.TimeoutError) and not isinstance(exc, sa_exc.DBAPIError)


def is_transient(exc: BaseException) -> bool:
    """A failure that a second attempt may cure. Timeouts are not: repeating a slow call adds load."""
    if not is_failure(exc):
        return False
    root = _root(exc)
    if isinstance(root, _timeouts) or isinstance(exc, sa_exc.TimeoutError):
        return False
    return True
