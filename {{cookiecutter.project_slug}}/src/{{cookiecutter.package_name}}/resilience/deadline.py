"""One deadline per request, in a ContextVar: every downstream wait is bounded by what is left of it.

The request middleware (``middleware.py``) sets it from ``REQUEST_TIMEOUT`` (a client may shorten it with
``X-Request-Timeout: <seconds>``) through ``Deadlines.enter``; ``Deadlines`` cancels a request when it passes
and the middleware answers 504; a request that used over 80% of it logs a warning.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

_deadline: ContextVar[float | None] = ContextVar("deadline", default=None)


class DeadlineExceeded(Exception):
    """The request's deadline passed before the work could start or finish."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Give the code inside ``seconds`` to finish: a job outside any request, a test."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining(clock: float | None = None) -> float | None:
    """Seconds left before the current request's deadline; None outside a request."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return deadline - (time.monotonic() if clock is None else clock)


def check() -> None:
    """Raise DeadlineExceeded when the current request has no time left: don't start work that can't finish."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded


def bounded(configured: float) -> float:
    """``configured``, or less when the request has less time left."""
    left = remaining()
    return configured if left is None else max(0.0, min(configured, left))


def parse_timeout(header: bytes | None, default: float) -> float:
    """The client's ``X-Request-Timeout`` when it is a positive number below the default, else the default."""
    if header:
        try:
            requested = float(header)
        except ValueError:
            return default
        if 0 < requested < default:
            return requested
    return default


class Deadlines:
    """Every in-flight request's deadline, enforced by one watcher task per process.

    A timer per request (``asyncio.timeout``) costs about 4.4 us under uvloop; a dict entry costs 0.3 us, and
    one task that looks every ``interval`` seconds cancels the requests that ran out of time. Deadlines are
    seconds long, so a 50 ms sweep is precise enough.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.in_flight: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()

    def enter(self, task: asyncio.Task[Any], deadline: float) -> Token[float | None]:
        """``task`` (a request) must finish by ``deadline`` (``time.monotonic()``); inside it, ``remaining()`` and
        ``check()`` see it. Set directly, not through ``within()``: this runs on every request."""
        self.in_flight[task] = deadline
        return _deadline.set(deadline)

    def leave(self, task: asyncio.Task[Any], token: Token[float | None]) -> None:
        _deadline.reset(token)
        del self.in_flight[task]
        self.expired.discard(task)

    def cut_short(self, task: asyncio.Task[Any]) -> bool:
        """Whether ``task`` was cancelled by its deadline (rather than by shutdown or a client gone)."""
        return task in self.expired

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            for task, deadline in list(self.in_flight.items()):
                if deadline <= now and task not in self.expired:
                    self.expired.add(task)
                    task.cancel("request deadline")
