"""Graceful shutdown, in Kubernetes order, written once.

1. The pod leaves the Service endpoints while the preStop hook sleeps, so no new traffic arrives.
2. SIGTERM: ``Lifecycle.draining`` turns on at once, so readiness answers 503 on any open connection.
3. gunicorn stops accepting; the worker (``worker.Worker``) lets in-flight requests finish within
   ``GRACEFUL_TIMEOUT - SHUTDOWN_CLOSE_SECONDS``, then cancels what is left (uvicorn logs the count).
4. The lifespan closes what it opened in reverse: background tasks, its clients, then the database pool,
   each within ``SHUTDOWN_CLOSE_SECONDS`` and each logged.
5. The worker exits and gunicorn exits 0, inside ``terminationGracePeriodSeconds``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


class Lifecycle:
    """Where the process is in its life: starting, serving, draining. Probes read it; a part's background loop
    awaits ``draining_started()`` to stop taking new work."""

    def __init__(self) -> None:
        self.created_at = time.monotonic()
        self.started = False
        self.draining = False
        self._draining = asyncio.Event()

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.created_at

    def begin_draining(self) -> None:
        """Turn on draining; called on the event loop (a signal handler goes through ``call_soon_threadsafe``)."""
        self.draining = True
        self._draining.set()

    async def draining_started(self) -> None:
        """Return once the process is draining."""
        await self._draining.wait()


def drain_on_sigterm(lifecycle: Lifecycle, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Chain a SIGTERM handler that turns on draining before the server's own handler runs.

    Installed only over a server's handler (uvicorn or its gunicorn worker installs one before the
    lifespan starts); in tests and scripts SIGTERM keeps its default. Returns the undo function.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return lambda: None

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        lifecycle.draining = True  # readiness sees it at once; the event is set on the loop, not in the handler
        loop.call_soon_threadsafe(lifecycle.begin_draining)
        loop.call_soon_threadsafe(log.info, "SIGTERM received: draining, readiness now fails")
        previous(signum, frame)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    signal.signal(signal.SIGTERM, on_sigterm)
    return restore


def closing(what: str, close: Callable[[], Awaitable[Any]], timeout: float) -> Callable[[], Awaitable[None]]:
    """A close step for the lifespan's exit stack: bounded in time, logged either way, never raising."""

    async def step() -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                await close()
        except Exception as exc:  # a failed close must not stop the next one
            log.warning("could not close %s cleanly", what, extra={"error": repr(exc)})
        else:
            log.info("closed %s", what, extra={"seconds": round(time.monotonic() - started, 3)})

    return step
