"""One request that reads Redis and the database: one trace, every span under the request's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import SettingsFactory, serve
from tests.redis_cache.servers import redis_server
from tests.tracing.conftest import QUICK, create_traced_app
from tests.tracing.receiver import Receiver
from tests.tracing.test_tracing import CALLER_SPAN, CALLER_TRACE, TRACEPARENT, by_name, show


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = redis_server()
    yield server.url
    server.close()


async def test_a_cached_read_traces_redis_and_the_database(
    services_settings: Settings, make_settings: SettingsFactory, redis_url: str, receiver: Receiver
) -> None:
    """A cache miss is a server span under the caller's with Redis's GET, the statement and Redis's SET under it."""
    async with Redis.from_url(redis_url) as client:
        await client.flushdb()
    settings = make_settings(
        DATABASE_URL=services_settings.db.url.get_secret_value(),
        REDIS_URL=redis_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        **QUICK,
    )
    async with serve(create_traced_app(settings)) as client:
        response = await client.get("/test/cached/answer", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    spans = receiver.wait_for(lambda got: any(s.kind == "SERVER" for s in got))
    print(f"\n[figure] received: {show(spans)}")
    server = by_name(spans, "GET /test/cached/{key}")
    assert (server.trace_id, server.parent_id) == (CALLER_TRACE, CALLER_SPAN)
    children = [s for s in spans if s.parent_id == server.span_id]
    assert [s.name for s in children if s.name in ("GET", "SET")] == ["GET", "SET"], show(spans)
    assert any(s.attributes.get("db.system.name") == "postgresql" for s in children), show(spans)
    assert all(s.kind == "CLIENT" for s in children)
    # The near cache's listener and the health checks run outside requests: they start no trace.
    assert {s.trace_id for s in spans} == {CALLER_TRACE}
