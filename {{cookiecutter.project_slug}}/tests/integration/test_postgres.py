"""The service on real PostgreSQL: health, and a guarded query through every middleware."""

from __future__ import annotations

import asyncio

from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import MANAGEMENT, client_for


async def test_health_with_real_dependencies(services_settings: Settings) -> None:
    """With PostgreSQL up, readiness is 200 and detailed health passes with the check, the breaker and the pool."""
    async with client_for(services_settings) as client:
        assert (await client.get("/health/ready")).status_code == 200
        body = (await client.get(f"{MANAGEMENT}/health/detailed")).json()
    assert body["status"] == "pass"
    assert {"database:responseTime", "database:connections", "database:circuitBreaker"} <= body["checks"].keys()


async def test_concurrent_guarded_queries_share_the_pool(services_settings: Settings) -> None:
    """A hundred concurrent reads and writes through the database's guard all succeed on the pool."""
    async with client_for(services_settings) as client:
        reads = await asyncio.gather(*(client.get("/test/query") for _ in range(50)))
        writes = await asyncio.gather(*(client.post("/test/query") for _ in range(50)))
    assert {r.status_code for r in reads + writes} == {200}
    assert {r.json()["value"] for r in reads + writes} == {1}
