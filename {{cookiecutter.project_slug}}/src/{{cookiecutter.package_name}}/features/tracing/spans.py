"""Where spans come from: each request, its database statements and its clients' calls.

The request's span is made here, from the request middleware's watcher seam, rather than by FastAPI's native
telemetry or contrib's FastAPIInstrumentor: each adds a layer of its own to every request (headers parsed into
objects, attributes built before the sampler decides; FastAPI's also spans for dependencies and serialisation),
about 100 us per request on the no-op route at 1% sampling, where the route itself costs 60-110 us (raw ASGI
calls in process, uvloop, a busy 2-core machine); this watcher adds about 10 us, since the middleware already
knows what the span needs (the route template, the status). ``make bench`` at the template root has the
figures under load. The span starts with the method as its name and takes ``GET /route/{template}`` once routed; a
W3C ``traceparent`` (any header of ``OTEL_PROPAGATORS``) makes it the caller's child.

Statements get their spans from ``statements.py``, HTTPX calls from its maintained instrumentation, given this
provider (a part with a client of its own instruments it likewise). The service keeps its provider to itself
rather than making it the global one, for FastAPI starts its own request spans, a second layer, as soon as a
global provider is set. A route adds to the request's span through ``opentelemetry.trace.get_current_span()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib.util import find_spec
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Scope

from .pipeline import RequestIds
from .statements import StatementSpans


class ServerSpans:
    """The request middleware's watcher: one server span per request, current while the app runs.

    A new trace (no context came with the request) is judged here first, by the sampler's own rule: one it drops
    gets no SDK span, only its ids, current so that the calls it makes carry "not sampled" on. Asking the SDK
    (its sampler chain, then its span) cost about 25 us per request under load, an eighth of the no-op route;
    this costs a few.
    """

    def __init__(self, tracer: trace.Tracer, keeps_new_trace: Callable[[int], bool], ids: RequestIds) -> None:
        self.tracer = tracer
        self.keeps_new_trace = keeps_new_trace
        self.ids = ids
        self.fields = frozenset(name.encode() for name in propagate.get_global_textmap().fields)

    def __call__(self, scope: Scope) -> ServerSpan:
        fields = self.fields
        carried = {key.decode(): value.decode("latin-1") for key, value in scope["headers"] if key in fields}
        method = scope["method"]
        parent = propagate.extract(carried) if carried else None
        span: trace.Span
        if parent is None:
            trace_id = self.ids.draw()
            if not self.keeps_new_trace(trace_id):
                span = trace.NonRecordingSpan(trace.SpanContext(trace_id, self.ids.generate_span_id(), False))
                return ServerSpan(span, method, context.attach(trace.set_span_in_context(span)))
            self.ids.hand_over(trace_id)
        span = self.tracer.start_span(method, parent, kind=SpanKind.SERVER)
        if span.is_recording():
            span.set_attributes(
                {"http.request.method": method, "url.path": scope["path"], "url.scheme": scope.get("scheme", "http")}
            )
        return ServerSpan(span, method, context.attach(trace.set_span_in_context(span, parent)))


class ServerSpan:
    __slots__ = ("log_fields", "method", "span", "token")

    def __init__(self, span: trace.Span, method: str, token: object) -> None:
        self.span = span
        self.method = method
        self.token = token
        self.log_fields: Mapping[str, str] | None = _ids(span.get_span_context())

    def end(self, route: str | None, status: int) -> None:
        span = self.span
        if span.is_recording():
            if route is not None:
                span.update_name(f"{self.method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
        span.end()
        context.detach(self.token)  # type: ignore[arg-type] # attach's own token


def _ids(span_context: trace.SpanContext) -> dict[str, str] | None:
    """The ids a log line carries: only a sampled span's, whose trace the collector receives."""
    if not span_context.trace_flags.sampled:
        return None
    return {"trace_id": format(span_context.trace_id, "032x"), "span_id": format(span_context.span_id, "016x")}


def instrument(provider: TracerProvider, engine: AsyncEngine) -> Callable[[], None]:
    """Child spans of statements and of HTTPX calls; returns the undo."""
    statements = StatementSpans(provider.get_tracer(__name__), engine.sync_engine)
    undo = [statements.listen(engine.sync_engine), _instrument_httpx(provider)]

    def uninstrument() -> None:
        for step in reversed(undo):
            step()

    return uninstrument


def _instrument_httpx(provider: TracerProvider) -> Callable[[], None]:
    """Outgoing HTTPX calls: a client span each, and the trace carried on in ``traceparent``."""
    if find_spec("httpx") is None:  # no HTTPX client in this service yet: nothing to trace
        return lambda: None
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    def uninstrument() -> None:
        instrumentor.uninstrument()

    return uninstrument


def note_guard_event(dependency: str, event: str, attributes: Mapping[str, object]) -> None:
    """A guard's fast failures and retries become events of the span they happen in (``Guards.listen``)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(event, {"dependency": dependency, **attributes})  # type: ignore[dict-item]


def add_ids_to_log_records() -> Callable[[], None]:
    """Every log record made inside a sampled span carries ``trace_id`` and ``span_id``; returns the undo.

    The JSON formatter writes a record's extra attributes after the request id.
    """
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        ids = _ids(trace.get_current_span().get_span_context())
        if ids is not None:
            record.__dict__.update(ids)
        return record

    logging.setLogRecordFactory(make_record)
    return lambda: logging.setLogRecordFactory(previous)
