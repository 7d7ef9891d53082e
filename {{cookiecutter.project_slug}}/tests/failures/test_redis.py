"""Redis killed and restarted: the cache degrades to the in-process cache and the database, never to errors."""

from __future__ import annotations

import asyncio
import time

from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import client_for
from tests.servers import ServerHandle


async def test_redis_down_degrades_and_recovers(services_settings: Settings, redis_server_handle: ServerHandle) -> None:
    """With Redis killed, reads stay 200 and fast, readiness stays 200, health warns; back up, health passes again."""
    async with client_for(
        services_settings.model_copy(
            update={"health": services_settings.health.model_copy(update={"cache_ttl_seconds": 0.0})}
        )
    ) as client:
        ids = [(await client.post("/api/v1/items", json={"name": f"n{i}"})).json()["id"] for i in range(5)]
        redis_server_handle.stop()
        reads = []
        for item_id in ids * 4:
            started = time.perf_counter()
            response = await client.get(f"/api/v1/items/{item_id}")
            reads.append((response.status_code, time.perf_counter() - started))
        ready = (await client.get("/health/ready")).status_code
        degraded = (await client.get("/health/detailed")).json()
        redis_server_handle.start()
        started = time.monotonic()
        while (await client.get("/health/detailed")).json()["checks"]["redis:responseTime"][0]["status"] != "pass":
            assert time.monotonic() - started < 10, "redis check did not pass again"
            await asyncio.sleep(0.1)
        back = time.monotonic() - started
        await client.get(f"/api/v1/items/{ids[0]}")
        await client.get(f"/api/v1/items/{ids[0]}")
        metrics = (await client.get("/metrics")).text
    slowest = max(seconds for _status, seconds in reads)
    ok = [status for status, _ in reads].count(200)
    print(f"\n[figure] redis down: reads {ok}/{len(reads)} ok, slowest {slowest * 1000:.0f} ms; back in {back:.2f}s")
    assert {status for status, _ in reads} == {200}
    assert slowest < 1.0
    assert ready == 200
    assert degraded["status"] == "warn"
    assert degraded["checks"]["redis:responseTime"][0]["status"] == "warn"
    assert 'cache_requests_total{result="hit"}' in metrics
