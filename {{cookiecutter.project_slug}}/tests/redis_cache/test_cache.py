"""The cache on a real Redis: shared, closed in order, and degrading to the in-process cache when Redis dies."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable

from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import MANAGEMENT, SettingsFactory, client_for
from tests.servers import ServerHandle


async def test_values_are_shared_through_redis(redis_settings: Settings, redis_handle: ServerHandle) -> None:
    """A stored value lands in Redis with its TTL, and a value another worker stored there is a hit."""
    async with client_for(redis_settings) as client, Redis.from_url(redis_handle.url) as redis:
        assert (await client.put("/test/cache/mine", content=b"v1")).status_code == 204
        assert await redis.get("mine") == b"v1"
        assert 0 < await redis.ttl("mine") <= redis_settings.cache.ttl_seconds
        await redis.set("theirs", b"v2")
        assert (await client.get("/test/cache/theirs")).content == b"v2"
        health = (await client.get(f"{MANAGEMENT}/health/detailed")).json()
        metrics = (await client.get(f"{MANAGEMENT}/metrics")).text
    assert health["status"] == "pass"
    assert {"redis:responseTime", "redis:circuitBreaker"} <= health["checks"].keys()
    assert 'cache_requests_total{result="hit"} 1.0' in metrics


async def test_redis_down_degrades_and_recovers(redis_settings: Settings, redis_handle: ServerHandle) -> None:
    """With Redis killed, reads stay 200 and fast, readiness stays 200, health warns; back up, health passes again."""
    settings = redis_settings.model_copy(
        update={"health": redis_settings.health.model_copy(update={"cache_ttl_seconds": 0.0})}
    )
    async with client_for(settings) as client:
        keys = [f"k{i}" for i in range(5)]
        for key in keys:
            await client.put(f"/test/cache/{key}", content=key.encode())
        redis_handle.stop()
        reads = []
        for key in keys * 4:
            started = time.perf_counter()
            response = await client.get(f"/test/cache/{key}")
            reads.append((response.status_code, response.content, time.perf_counter() - started))
        ready = (await client.get("/health/ready")).status_code
        degraded = (await client.get(f"{MANAGEMENT}/health/detailed")).json()
        redis_handle.start()
        started = time.monotonic()
        while (await client.get(f"{MANAGEMENT}/health/detailed")).json()["checks"]["redis:responseTime"][0][
            "status"
        ] != "pass":
            assert time.monotonic() - started < 10, "redis check did not pass again"
            await asyncio.sleep(0.1)
        back = time.monotonic() - started
        await client.put("/test/cache/again", content=b"x")
        metrics = (await client.get(f"{MANAGEMENT}/metrics")).text
    slowest = max(seconds for _status, _body, seconds in reads)
    ok = [status for status, _body, _seconds in reads].count(200)
    print(f"\n[figure] redis down: reads {ok}/{len(reads)} ok, slowest {slowest * 1000:.0f} ms; back in {back:.2f}s")
    assert [(status, body) for status, body, _ in reads] == [(200, key.encode()) for key in keys * 4]
    assert slowest < 1.0
    assert ready == 200
    assert degraded["status"] == "warn"
    assert degraded["checks"]["redis:responseTime"][0]["status"] == "warn"
    assert 'cache_requests_total{result="fallback"} 20.0' in metrics
    # Redis's errors count against its breaker: the classifier knows them (features/redis_cache registers them).
    failures = re.search(r'dependency_calls_total\{dependency="redis",outcome="failure"\} (\S+)', metrics)
    assert failures is not None and float(failures.group(1)) >= 1


async def test_a_hung_redis_costs_a_read_one_call_timeout(redis_settings: Settings, redis_handle: ServerHandle) -> None:
    """Redis SIGSTOPped with its connections open, four readers of a cached value, default settings: every read
    answers, none waits much longer than REDIS_CALL_TIMEOUT_SECONDS (0.1 s), and the breaker opens within a
    handful of calls, after which reads don't wait for Redis at all."""
    async with client_for(redis_settings) as client:
        assert (await client.get("/test/cached/item")).content == b"1"  # a miss: the value is now in Redis
        redis_handle.pause()

        async def reader() -> list[tuple[int, bytes, float]]:
            reads = []
            for _ in range(10):
                started = time.perf_counter()
                response = await client.get("/test/cached/item")
                reads.append((response.status_code, response.content, time.perf_counter() - started))
            return reads

        reads = [read for reads in await asyncio.gather(*(reader() for _ in range(4))) for read in reads]
        metrics = (await client.get(f"{MANAGEMENT}/metrics")).text
    failures = re.search(r'dependency_calls_total\{dependency="redis",outcome="failure"\} (\S+)', metrics)
    state = re.search(r'^breaker_state\{dependency="redis"\} (\S+)$', metrics, re.M)
    assert failures is not None and state is not None
    worst = max(seconds for _status, _body, seconds in reads)
    print(
        f"\n[figure] redis hung, 4 readers: {len(reads)} reads, worst {worst * 1000:.0f} ms, "
        f"breaker open after {float(failures.group(1)):.0f} failed calls"
    )
    assert {(status, body) for status, body, _seconds in reads} == {(200, b"1")}
    assert worst < 0.3  # the call timeout, then a database read; generous for a busy machine
    assert float(state.group(1)) == 2.0  # open
    assert float(failures.group(1)) <= 8  # five to open it, and at most three more already on their way


async def test_a_healed_redis_reads_half_open_without_any_traffic(
    redis_settings: Settings, make_settings: SettingsFactory, redis_handle: ServerHandle
) -> None:
    """Redis killed until its breaker opens, then restarted, and no request at all: once the open duration has
    passed, the state gauge, health and the admin route say half-open, not open."""
    settings = make_settings(
        DATABASE_URL=redis_settings.db.url.get_secret_value(),
        REDIS_URL=redis_handle.url,
        REDIS_BREAKER_MINIMUM_CALLS="4",
        REDIS_BREAKER_OPEN_SECONDS="1",
        HEALTH_CACHE_TTL_SECONDS="0",
        ADMIN_TOKEN="admin-token",
    )
    auth = {"authorization": "Bearer admin-token"}
    async with client_for(settings) as client:
        redis_handle.stop()
        for i in range(10):
            await client.get(f"/test/cache/k{i}")
        opened = (await client.get(f"{MANAGEMENT}/admin/breakers", headers=auth)).json()["redis"]
        redis_handle.start()
        await asyncio.sleep(2.5)  # well past the open duration (1 s, give or take its jitter), with no request
        metrics = (await client.get(f"{MANAGEMENT}/metrics")).text
        gauge = re.search(r'^breaker_state\{dependency="redis"\} (\S+)$', metrics, re.M)
        admin = (await client.get(f"{MANAGEMENT}/admin/breakers", headers=auth)).json()["redis"]
        health = (await client.get(f"{MANAGEMENT}/health/detailed")).json()["checks"]["redis:circuitBreaker"][0]
    assert opened["state"] == "open"
    assert gauge is not None and float(gauge.group(1)) == 1.0
    assert admin["state"] == health["observedValue"] == "half_open"
    assert admin["retry_after"] == 0


async def test_resources_close_in_reverse_order(
    make_settings: SettingsFactory, captured_logs: Callable[[], list[str]]
) -> None:
    """The lifespan closes background tasks, then Redis, then the database pool, and logs each."""
    async with client_for(make_settings(REDIS_URL="redis://127.0.0.1:1/0", REDIS_CONNECT_TIMEOUT_SECONDS="0.1")):
        pass
    closed = [json.loads(line)["message"] for line in captured_logs() if '"closed ' in line]
    assert closed == ["closed background tasks", "closed redis", "closed database pool"]
