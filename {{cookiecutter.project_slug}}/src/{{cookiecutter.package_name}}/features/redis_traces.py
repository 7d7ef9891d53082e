"""Spans of Redis commands, where the service has both its Redis cache and traces: a client span per command.

It opens after the traces part and instruments redis-py with the provider that part offers; with traces off
(no collector named) or no Redis configured, it does nothing. The near cache's listener and the health pings
start no trace of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from . import Assembly, Feature
from .tracing import Tracing


@asynccontextmanager
async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
    tracing = assembly.find(Tracing)
    if tracing is None or assembly.find(Redis) is None:
        yield
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor  # only where traces are on

    instrumentor = RedisInstrumentor()
    instrumentor.instrument(tracer_provider=tracing.provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


feature = Feature("redis_traces", lifespan=lifespan, after=("redis", "tracing"))
