"""Overload: requests past the adaptive concurrency limit are refused at once, before anything else runs.

The outermost ASGI layer. A request over the limit (``resilience.admission.GradientLimit``) is answered 503
problem+json with ``Retry-After`` from bytes built once, before the request middleware, the router or the body:
a refusal costs a small fraction of a success (``make bench``'s overload row measures it), so that a worker
offered three times what it can serve spends its core on the requests it admitted, and those stay fast. Without
it, every request was admitted and they all queued in the event loop together: the successes came too late
for their clients, and the probes waited behind them.

Probes and the management port (``/metrics``, ``/admin``, ``/health/detailed``) are never refused nor
counted, and readiness never fails because of load: a pod that sheds is still serving at capacity, and taking it
out of the Service would move its load onto the others. The limit, the requests in flight, the queueing delay
and the refusals are metrics (sampled with the others, so nothing per request), and ``/health/detailed`` warns
while requests are being refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .checks import Check, Result
from .metrics import Metrics
from .resilience.admission import Admission, GradientLimit, LimitConfig
from .settings import AdmissionSettings

RETRY_AFTER_SECONDS = 1
_BODY = orjson.dumps(
    {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The service is at its concurrency limit; retry after Retry-After seconds.",
    }
)
_START = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(_BODY)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    ],
}
_END = {"type": "http.response.body", "body": _BODY}


def limit_from(cfg: AdmissionSettings) -> Admission:
    return Admission(
        GradientLimit(
            LimitConfig(
                initial_limit=cfg.initial_limit,
                min_limit=cfg.min_limit,
                max_limit=cfg.max_limit,
                queue_delay=cfg.queue_delay_seconds,
            )
        )
    )


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, limit: Admission | None, exempt: frozenset[str], management_port: int) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self.management_port = management_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit
        if (
            limit is None
            or scope["type"] != "http"
            or scope["path"] in self.exempt
            or (scope.get("server") or (None, 0))[1] == self.management_port
        ):
            await self.app(scope, receive, send)
            return
        if not limit.limit.try_acquire() and not await limit.wait():
            await send(_START)  # uvicorn copies what it sends: the shared messages stay as they are
            await send(_END)
            return
        admitted_at = limit.clock()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            # A guard's refusal further in (503) or a passed deadline (504): more was admitted than can be served.
            limit.release(admitted_at, dropped=status in (503, 504))


def sampler(admission: Admission) -> Callable[[Metrics], None]:
    """Publish the limit's state, for the metrics sampler; the refusals as a counter's increase."""
    published = 0
    limit = admission.limit

    def sample(metrics: Metrics) -> None:
        nonlocal published
        metrics.admission_limit.set(limit.current)
        metrics.admission_in_flight.set(limit.in_flight)
        metrics.admission_queue_delay.set(admission.oldest_wait())
        metrics.admission_queued.set(admission.queued)
        metrics.admission_min_rtt.set(limit.min_rtt or 0.0)
        if limit.refused > published:
            metrics.admission_refusals.inc(limit.refused - published)
            published = limit.refused

    return sample


def check(admission: Admission, *, recent_seconds: float = 10.0) -> Check:
    """Warns (never fails) while requests are refused: the service is at capacity and should scale out."""
    limit = admission.limit
    last = [limit.refused, -recent_seconds]  # refusals seen, when the last new ones were seen

    async def run() -> Result:
        now = time.monotonic()
        if limit.refused > last[0]:
            last[:] = [limit.refused, now]
        used = round(100 * limit.in_flight / max(1, limit.current), 1)
        if now - last[1] < recent_seconds:
            return Result("warn", used, "percent", f"refusing requests over the concurrency limit of {limit.current}")
        return Result("pass", used, "percent")

    return Check("admission:utilization", "system", critical=False, run=run)
