"""One deadline per request, in a ContextVar: every downstream wait is bounded by what is left of it.

``DeadlineMiddleware`` sets it from ``REQUEST_TIMEOUT`` (a client may shorten it with
``X-Request-Timeout: <seconds>``); ``Deadlines`` cancels a request when it passes and the middleware answers
504; a request that used over 80% of it logs a warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import Metrics

log = logging.getLogger(__name__)

_deadline: ContextVar[float | None] = ContextVar("deadline", default=None)


class DeadlineExceeded(Exception):
    """The request's deadline passed before the work could start or finish."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Give the code inside ``seconds`` to finish (the middleware does this once per request)."""
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

    def sample_in_flight(self, metrics: Metrics) -> None:
        """Every request past the probes holds an entry here: their number is the in-progress gauge, sampled
        with the other gauges rather than moved twice per request."""
        metrics.requests_in_progress.set(len(self.in_flight))

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            for task, deadline in list(self.in_flight.items()):
                if deadline <= now and task not in self.expired:
                    self.expired.add(task)
                    task.cancel("request deadline")


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, timeout: float, deadlines: Deadlines, timeout_response: ASGIApp) -> None:
        self.app = app
        self.timeout = timeout
        self.deadlines = deadlines
        self.timeout_response = timeout_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = self.timeout
        for key, value in scope["headers"]:
            if key == b"x-request-timeout":
                budget = parse_timeout(value, self.timeout)
                break
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - ASGI apps always run in a task
        started = time.monotonic()
        self.deadlines.in_flight[task] = started + budget
        token = _deadline.set(started + budget)  # set directly, not through within(): this runs on every request
        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if task not in self.deadlines.expired or response_started:
                raise
            task.uncancel()
            await self.timeout_response(scope, receive, send)
        finally:
            _deadline.reset(token)
            del self.deadlines.in_flight[task]
            self.deadlines.expired.discard(task)
        used = time.monotonic() - started
        if used > 0.8 * budget:
            log.warning("request used most of its deadline", extra={"used_s": round(used, 3), "deadline_s": budget})
