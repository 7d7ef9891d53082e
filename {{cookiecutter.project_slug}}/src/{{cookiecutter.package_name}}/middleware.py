"""The one ASGI layer in front of the app: a request on the management port goes to the management app
(``management.py``) and a probe straight to its router, both past all the rest; every other request gets, in
one pass, its correlation id, its deadline, the HTTP metrics, an access line, and a problem+json answer when its
deadline cuts it short (504) or an exception escaped every handler (500). An optional part may watch each of
these requests (``observability.RequestWatcher``): it starts before the app and ends after the access line,
with the route template the router matched; with no part watching, that costs one test per request.

One pure ASGI layer rather than one per concern: each layer adds a coroutine, a wrapped ``send`` and a header
scan to every request, and separate layers were most of what the stack cost over a bare app (``make bench`` at
the template root). Not ``BaseHTTPMiddleware``: it runs the endpoint in another task, where the request id's
ContextVar would be lost.

The metrics carry prometheus-fastapi-instrumentator's names and labels (``http_requests_total``,
``http_request_duration_seconds``; ``http_requests_inprogress`` is sampled from ``Deadlines.in_flight``) but
are recorded here: its middleware matches every route twice per request to find the template and builds a
Response object for its metric callbacks, which cost more than the rest of the stack together, while the
router has already written the template into ``scope["route"]``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import crash_response, timeout_response
from .metrics import BatchedCounter, BatchedHistogram, Metrics
from .observability import AccessLog, RequestHooks, RequestWatch, new_request_id, request_id_var
from .resilience import Deadlines
from .resilience.deadline import parse_timeout

log = logging.getLogger(__name__)
# A route that takes bodies over MAX_BODY_BYTES says so: @router.post(..., openapi_extra={BODY_LIMIT: 50_000_000}),
# which also tells the API's clients.
BODY_LIMIT = "x-max-body-bytes"


class BodyLimits:
    """A bound on the size of a request body and on the wait for each part of it.

    A body is read into memory whole before it is parsed, so without a bound one request could take all of the
    worker's memory. A declared Content-Length over the limit is refused before any of the body is read; a
    chunked body is counted as it arrives and cut at the limit: 413. A client that stops sending mid-body is
    answered 408 after ``read_timeout``. Both close the connection, whose unread rest is not worth reading.
    The errors are raised from ``receive`` while the route reads its body, so they reach the app's
    problem+json handler like any other HTTPException; a route that never reads its body is not bounded here,
    and uvicorn's flow control keeps it from buffering more than a few reads of it.
    """

    def __init__(self, max_bytes: int, read_timeout: float) -> None:
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    def bounded(self, scope: Scope, receive: Receive, declared: int | None) -> Receive:
        received = 0
        more_body = True
        limit = 0  # known at the first read, once the router has matched the route

        async def receive_bounded() -> Message:
            nonlocal received, more_body, limit
            if not more_body:  # the body is whole: a wait for the client's disconnect, not bounded here
                return await receive()
            if not limit:
                extra = getattr(scope.get("route"), "openapi_extra", None) or {}
                limit = int(extra.get(BODY_LIMIT, self.max_bytes))
                if declared is not None and declared > limit:
                    raise _too_large(limit)
            try:
                async with asyncio.timeout(self.read_timeout):
                    message = await receive()
            except TimeoutError:
                detail = f"No part of the body arrived within {self.read_timeout:g} s."
                raise HTTPException(408, detail, headers={"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more_body = message.get("more_body", False)
                if received > limit:
                    raise _too_large(limit)
            return message

        return receive_bounded


def _merged(watches: list[RequestWatch]) -> dict[str, str] | None:
    fields = {key: value for watch in watches for key, value in (watch.log_fields or {}).items()}
    return fields or None


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"The body is over this route's limit of {limit} bytes.", headers={"Connection": "close"})


@dataclass(frozen=True, slots=True)
class ProbeShortcut:
    """The probe paths, answered by ``app`` (their router) directly: no access line, metrics or deadline."""

    paths: frozenset[str]
    app: ASGIApp


@dataclass(frozen=True, slots=True)
class ManagementPort:
    """The management port's number, and the app that answers every request on it (``management.py``)."""

    port: int
    app: ASGIApp


@dataclass(frozen=True, slots=True)
class Limits:
    """Each request's deadline (``timeout`` seconds, or less if the client asks) and its body's bounds."""

    timeout: float
    body: BodyLimits
    deadlines: Deadlines


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Where each request is counted and logged."""

    metrics: Metrics
    access: AccessLog


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        management: ManagementPort,
        probes: ProbeShortcut,
        limits: Limits,
        telemetry: Telemetry,
        hooks: RequestHooks,
    ) -> None:
        self.app = app
        self.management_port = management.port
        self.management = management.app
        self.router = probes.app
        self.probe_paths = probes.paths
        self.timeout = limits.timeout
        self.body_limits = limits.body
        self.deadlines = limits.deadlines
        self.metrics = telemetry.metrics
        self.access = telemetry.access
        self.on_crash = hooks.unhandled
        self.watchers = hooks.watchers  # filled by the optional parts as the lifespan opens them
        self._series: dict[tuple[str, str, int], tuple[BatchedCounter, BatchedHistogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The socket the request came in on: (host, port), or None on a Unix socket. About 40 ns a request (uvloop).
        server = scope.get("server")
        if server is not None and server[1] == self.management_port:
            await self.management(scope, receive, send)
            return
        path = scope["path"]
        if path in self.probe_paths and scope["method"] == "GET":
            # A kubelet probing every few seconds per pod is noise in logs and request metrics, and liveness
            # must answer even when the rest of the stack struggles: no access line, no metrics, no deadline.
            await self.router(scope, receive, send)
            return

        caller_id = None
        budget = self.timeout
        has_body = False
        declared: int | None = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                caller_id = value
            elif key == b"x-request-timeout":
                budget = parse_timeout(value, self.timeout)
            elif key == b"content-length":
                has_body = True
                declared = int(value) if value.isdigit() else None
            elif key == b"transfer-encoding":
                has_body = True
        if has_body:
            receive = self.body_limits.bounded(scope, receive, declared)
        request_id = new_request_id(caller_id)
        id_token = request_id_var.set(request_id)
        watches: list[RequestWatch] = []
        if self.watchers:
            for watcher in self.watchers:
                watch = watcher(scope)
                if watch is not None:
                    watches.append(watch)
        id_header = (b"x-request-id", request_id.encode())
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - ASGI apps always run in a task
        started = time.monotonic()
        deadline_token = self.deadlines.enter(task, started + budget)
        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if response_started or not self.deadlines.cut_short(task):
                raise  # shutdown or a client gone: not ours to answer
            task.uncancel()
            await timeout_response(scope, receive, send_with_id)
        except Exception as exc:
            self.on_crash(exc, scope)
            if response_started:
                raise
            await crash_response(scope, receive, send_with_id)
        finally:
            self.deadlines.leave(task, deadline_token)
            elapsed = time.monotonic() - started
            route = getattr(scope.get("route"), "path", None)
            self._record(route or "none", scope["method"], status, elapsed)
            if self.access.enabled:
                fields = None if not watches else watches[0].log_fields if len(watches) == 1 else _merged(watches)
                self.access.write(scope, route, status, elapsed, request_id, fields)
            if elapsed > 0.8 * budget:
                log.warning(
                    "request used most of its deadline", extra={"used_s": round(elapsed, 3), "deadline_s": budget}
                )
            for watch in reversed(watches):  # the last to start ends first
                watch.end(route, status)
            request_id_var.reset(id_token)

    def _record(self, handler: str, method: str, status: int, elapsed: float) -> None:
        key = (handler, method, status)
        series = self._series.get(key)
        if series is None:
            metrics = self.metrics
            series = self._series[key] = (
                metrics.batched_counter(metrics.http_requests, handler, method, str(status)),
                metrics.batched_histogram(metrics.http_latency, handler, method),
            )
        series[0].inc()
        series[1].observe(elapsed)
