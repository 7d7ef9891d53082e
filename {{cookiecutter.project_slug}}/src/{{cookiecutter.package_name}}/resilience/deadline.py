"""One deadline per request, in a ContextVar: every downstream wait is bounded by what is left of it.

``DeadlineMiddleware`` sets it from ``REQUEST_TIMEOUT`` (a client may shorten it with
``X-Request-Timeout: <seconds>``), cancels the request when it passes and answers 504, and logs a
warning for a request that used over 80% of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, timeout: float, timeout_response: ASGIApp) -> None:
        self.app = app
        self.timeout = timeout
        self.timeout_response = timeout_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((value for key, value in scope["headers"] if key == b"x-request-timeout"), None)
        budget = parse_timeout(header, self.timeout)
        started = time.monotonic()
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            with within(budget):
                async with asyncio.timeout(budget) as scope_timeout:
                    await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if response_started or not scope_timeout.expired():
                raise
            await self.timeout_response(scope, receive, send)
        used = time.monotonic() - started
        if used > 0.8 * budget:
            log.warning("request used most of its deadline", extra={"used_s": round(used, 3), "deadline_s": budget})
