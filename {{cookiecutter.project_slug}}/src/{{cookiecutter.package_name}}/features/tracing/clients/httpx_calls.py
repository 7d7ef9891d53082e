"""Outgoing HTTPX calls: a client span each, and the trace carried on in ``traceparent``."""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec

from opentelemetry.sdk.trace import TracerProvider


def instrument(provider: TracerProvider) -> Callable[[], None]:
    if find_spec("httpx") is None:  # no HTTPX client in this service yet: nothing to trace
        return lambda: None
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    def uninstrument() -> None:
        instrumentor.uninstrument()

    return uninstrument
