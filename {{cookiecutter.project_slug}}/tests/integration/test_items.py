"""Items end to end through the HTTP API on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import client_for


async def test_items_round_trip_on_postgres(services_settings: Settings) -> None:
    """POST stores an item in PostgreSQL, GET reads it back, the list pages through it."""
    async with client_for(services_settings) as client:
        created = [(await client.post("/api/v1/items", json={"name": f"item {i}"})).json() for i in range(5)]
        assert [item["id"] for item in created] == [1, 2, 3, 4, 5]
        assert (await client.get("/api/v1/items/3")).json() == created[2]
        page = (await client.get("/api/v1/items", params={"limit": 2, "offset": 2})).json()
        assert [item["id"] for item in page["items"]] == [3, 4]


async def test_cache_miss_then_hit_on_redis(services_settings: Settings) -> None:
    """A read fills Redis (miss), the next read comes from it (hit) even when the row has changed under it."""
    assert services_settings.redis.url is not None
    async with (
        client_for(services_settings) as client,
        Redis.from_url(services_settings.redis.url.get_secret_value()) as redis,
    ):
        item = (await client.post("/api/v1/items", json={"name": "original"})).json()
        await redis.delete(f"items:{item['id']}")
        assert (await client.get(f"/api/v1/items/{item['id']}")).json()["name"] == "original"
        assert await redis.exists(f"items:{item['id']}") == 1
        await redis.set(
            f"items:{item['id']}",
            b'{"id": 1, "name": "from cache", "description": null, "created_at": "2026-01-01T00:00:00Z"}',
        )
        assert (await client.get(f"/api/v1/items/{item['id']}")).json()["name"] == "from cache"
        metrics = (await client.get("/metrics")).text
    assert 'cache_requests_total{result="miss"} 1.0' in metrics
    assert 'cache_requests_total{result="hit"} 1.0' in metrics


async def test_concurrent_writes_and_reads(services_settings: Settings) -> None:
    """Fifty concurrent creates and reads all succeed through the pool."""
    async with client_for(services_settings) as client:
        created = await asyncio.gather(*(client.post("/api/v1/items", json={"name": f"n{i}"}) for i in range(50)))
        assert {response.status_code for response in created} == {201}
        reads = await asyncio.gather(*(client.get(f"/api/v1/items/{r.json()['id']}") for r in created))
        assert {response.status_code for response in reads} == {200}


async def test_health_with_real_dependencies(services_settings: Settings) -> None:
    """With PostgreSQL and Redis up, readiness is 200 and detailed health passes with both checks and the pool."""
    async with client_for(services_settings) as client:
        assert (await client.get("/health/ready")).status_code == 200
        body = (await client.get("/health/detailed")).json()
    assert body["status"] == "pass"
    assert {"database:responseTime", "redis:responseTime", "database:connections", "redis:circuitBreaker"} <= body[
        "checks"
    ].keys()
