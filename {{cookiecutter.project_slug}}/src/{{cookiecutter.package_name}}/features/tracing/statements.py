"""A client span per database statement, from SQLAlchemy's own cursor events.

Written here rather than taken from opentelemetry-instrumentation-sqlalchemy: that package declares
``sqlalchemy < 2.1`` and refuses to instrument the SQLAlchemy this service locks (it logs a dependency conflict
and does nothing), and past that check it builds the same span from the same events. A statement run outside
a sampled request (a readiness check, a migration, a request the sampler dropped) gets no span and costs one
lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext

_SPAN = "_request_span"  # where the statement's span waits on SQLAlchemy's execution context for its end


class StatementSpans:
    def __init__(self, tracer: trace.Tracer, engine: Engine) -> None:
        self.tracer = tracer
        url = engine.url
        self.system = url.get_backend_name()
        self.target = "" if self.system == "sqlite" else f" {url.database}"  # SQLite's would be a file's path
        self.attributes = {
            key: value
            for key, value in {
                "db.system.name": self.system,
                "db.namespace": url.database,
                "server.address": url.host,
                "server.port": url.port,
            }.items()
            if value is not None
        }

    def listen(self, engine: Engine) -> Callable[[], None]:
        """Start making spans for ``engine``'s statements; returns the undo."""
        listeners: list[tuple[str, Callable[..., None]]] = [
            ("before_cursor_execute", self.before),
            ("after_cursor_execute", self.after),
            ("handle_error", self.failed),
        ]
        for name, listener in listeners:
            event.listen(engine, name, listener)

        def remove() -> None:
            for name, listener in listeners:
                event.remove(engine, name, listener)

        return remove

    def before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if context is None or not trace.get_current_span().get_span_context().trace_flags.sampled:
            return  # outside a request, or in one the sampler dropped
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = self.tracer.start_span(f"{operation}{self.target}", kind=SpanKind.CLIENT)
        if span.is_recording():
            span.set_attributes(self.attributes)
            span.set_attributes({"db.operation.name": operation, "db.query.text": statement[:2048]})
        setattr(context, _SPAN, span)

    def after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        span = getattr(context, _SPAN, None)
        if span is not None:
            delattr(context, _SPAN)
            span.end()

    def failed(self, error: ExceptionContext) -> None:
        span = getattr(error.execution_context, _SPAN, None)
        if span is not None:
            delattr(error.execution_context, _SPAN)
            span.set_status(StatusCode.ERROR, type(error.original_exception).__name__)
            span.end()
