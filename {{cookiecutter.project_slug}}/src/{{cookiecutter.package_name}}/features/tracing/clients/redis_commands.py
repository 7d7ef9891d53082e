"""Redis commands: a client span each (the near cache's listener and health pings start no trace)."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider


def instrument(provider: TracerProvider) -> Callable[[], None]:
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    def uninstrument() -> None:
        instrumentor.uninstrument()

    return uninstrument
