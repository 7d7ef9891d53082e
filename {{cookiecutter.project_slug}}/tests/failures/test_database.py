"""PostgreSQL hung, killed, slow and saturated under load, with the app in-process and a fault proxy in between."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.conftest import MANAGEMENT, SettingsFactory, serve
from tests.faults import FaultProxy
from tests.routes import create_test_app
from tests.servers import ServerHandle


@asynccontextmanager
async def proxied(
    make_settings: SettingsFactory, migrated: str, **env: str
) -> AsyncIterator[tuple[httpx.AsyncClient, FaultProxy]]:
    async with FaultProxy.for_url(migrated) as proxy:
        settings = make_settings(DATABASE_URL=proxy.url_for(migrated), **env)
        async with serve(create_test_app(settings)) as client:
            yield client, proxy


async def timed(
    client: httpx.AsyncClient, method: str, path: str, **kwargs: object
) -> tuple[int, float, httpx.Response]:
    started = time.perf_counter()
    response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    return response.status_code, time.perf_counter() - started, response


async def test_hung_database_opens_the_breaker_and_recovers(make_settings: SettingsFactory, migrated: str) -> None:
    """With PostgreSQL blackholed, the breaker opens, later calls answer 503 + Retry-After fast, and writes recover."""
    env = {
        "REQUEST_TIMEOUT": "2",
        "DB_STATEMENT_TIMEOUT_MS": "300",
        "DB_CONNECT_TIMEOUT_SECONDS": "0.5",
        "DB_POOL_TIMEOUT_SECONDS": "1",
        "DB_BREAKER_MINIMUM_CALLS": "10",
        "DB_BREAKER_OPEN_SECONDS": "5",
    }
    async with proxied(make_settings, migrated, **env) as (client, proxy):
        assert (await client.get("/test/query")).status_code == 200
        proxy.blackhole()
        first = await asyncio.gather(*(timed(client, "GET", "/test/query") for _ in range(20)))
        later = []
        for _ in range(10):
            later += await asyncio.gather(*(timed(client, "GET", "/test/query") for _ in range(5)))
        fast_503 = [
            r for status, seconds, r in later if status == 503 and seconds < 0.05 and "retry-after" in r.headers
        ]
        slowest = max(seconds for _status, seconds, _r in first + later)
        proxy.pass_through()
        started = time.monotonic()
        while (await client.post("/test/query")).status_code != 200:
            assert time.monotonic() - started < 5 * 1.1 + 5, "writes did not recover"
            await asyncio.sleep(0.1)
        recovery = time.monotonic() - started
    share = len(fast_503) / len(later)
    print(f"\n[figure] hung database: {share:.0%} fast 503s once open, slowest request {slowest:.2f}s")
    print(f"[figure] writes succeeded again {recovery:.2f}s after the database returned")
    assert share >= 0.9
    assert slowest < 2.2, "a request outlived its deadline"


async def test_restarted_database_leaves_no_stale_connections(
    make_settings: SettingsFactory, migrated: str, postgres: ServerHandle
) -> None:
    """After PostgreSQL is killed and restarted, no request fails on a pooled connection that died with it."""
    settings = make_settings(DATABASE_URL=migrated)
    async with serve(create_test_app(settings)) as client:
        warm = await asyncio.gather(*(client.get("/test/query") for _ in range(10)))
        assert {r.status_code for r in warm} == {200}
        postgres.stop()
        postgres.start()
        reads = await asyncio.gather(*(client.get("/test/query") for _ in range(10)))
        writes = [await client.post("/test/query") for _ in range(10)]
    assert {r.status_code for r in reads} == {200}
    assert {r.status_code for r in writes} == {200}


async def test_statement_timeout_fires_at_its_setting(make_settings: SettingsFactory, migrated: str) -> None:
    """A query running past DB_STATEMENT_TIMEOUT_MS is cancelled by the server at that time and answers 503."""
    settings = make_settings(DATABASE_URL=migrated, DB_STATEMENT_TIMEOUT_MS="300")
    async with serve(create_test_app(settings)) as client:
        status, seconds, _ = await timed(client, "GET", "/test/sleep", params={"seconds": 2})
    print(f"\n[figure] statement timeout 300 ms: answered {status} after {seconds * 1000:.0f} ms")
    assert status == 503
    assert 0.25 < seconds < 0.8


async def test_slow_calls_open_the_breaker(make_settings: SettingsFactory, migrated: str) -> None:
    """Calls that succeed but take longer than the slow-call threshold open the breaker by their rate alone."""
    env = {"DB_STATEMENT_TIMEOUT_MS": "300", "DB_BREAKER_MINIMUM_CALLS": "5"}  # slow = 0.8 x 300 ms
    settings = make_settings(DATABASE_URL=migrated, **env)
    async with serve(create_test_app(settings)) as client:
        slow = [await timed(client, "GET", "/test/sleep", params={"seconds": 0.26}) for _ in range(5)]
        status, seconds, response = await timed(client, "GET", "/test/query")
        breaker = (await client.get(f"{MANAGEMENT}/health/detailed")).json()["checks"]["database:circuitBreaker"][0]
    assert all(s == 200 for s, _, _ in slow)
    assert status == 503 and seconds < 0.05 and "retry-after" in response.headers
    assert breaker["state"] == "open"
    assert breaker["failure_rate"] == 0.0


async def test_latency_past_the_timeouts_fails_within_the_deadline(
    make_settings: SettingsFactory, migrated: str
) -> None:
    """With latency twice the statement timeout, the client-side timeouts fire, nothing hangs, and the breaker opens."""
    env = {"DB_STATEMENT_TIMEOUT_MS": "200", "DB_BREAKER_MINIMUM_CALLS": "5", "REQUEST_TIMEOUT": "4"}
    async with proxied(make_settings, migrated, **env) as (client, proxy):
        assert (await client.get("/test/query")).status_code == 200
        proxy.latency(0.4)
        results = await asyncio.gather(*(timed(client, "GET", "/test/query") for _ in range(8)))
        after = await timed(client, "GET", "/test/query")
    slowest = max(seconds for _, seconds, _ in results)
    print(f"\n[figure] latency 2x statement timeout: slowest {slowest:.2f}s, {len(results)} answered 503/504")
    assert {status for status, _, _ in results} <= {503, 504}
    assert max(seconds for _, seconds, _ in results) < 4.2
    assert after[0] == 503 and after[1] < 0.05


async def test_pool_exhaustion_answers_503_within_the_pool_timeout(
    make_settings: SettingsFactory, migrated: str
) -> None:
    """With more slow queries than connections, the excess answers 503 within the pool timeout, then all recovers."""
    env = {
        "DB_POOL_SIZE": "2",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT_SECONDS": "0.5",
        "DB_STATEMENT_TIMEOUT_MS": "5000",
    }
    settings = make_settings(DATABASE_URL=migrated, **env)
    async with serve(create_test_app(settings)) as client:
        results = await asyncio.gather(
            *(timed(client, "GET", "/test/sleep", params={"seconds": 1.5}) for _ in range(6))
        )
        after = await client.get("/test/query")
        metrics = (await client.get(f"{MANAGEMENT}/metrics")).text
    refused = [seconds for status, seconds, _ in results if status == 503]
    served = [seconds for status, seconds, _ in results if status == 200]
    print(f"\n[figure] pool of 2, 6 slow queries: {len(served)} served, {len(refused)} refused in {max(refused):.2f}s")
    assert len(served) == 2 and len(refused) == 4
    assert max(refused) < 0.5 + 0.3
    assert after.status_code == 200
    assert "db_pool_timeouts_total 4.0" in metrics


async def test_retry_storm_stays_within_budget(make_settings: SettingsFactory, migrated: str) -> None:
    """When every connection is reset, retries stay within the budget (about 10% of calls plus a small floor)."""
    env = {"DB_BREAKER_MINIMUM_CALLS": "100000", "DB_CONNECT_TIMEOUT_SECONDS": "0.5"}
    async with proxied(make_settings, migrated, **env) as (client, proxy):
        proxy.reset()
        calls = 200
        started = time.monotonic()
        statuses = [(await client.get("/test/query")).status_code for _ in range(calls)]
        elapsed = time.monotonic() - started
        metrics = (await client.get(f"{MANAGEMENT}/metrics")).text
    retried = _sample(metrics, 'retries_total{dependency="database",outcome="attempted"}')
    print(f"\n[figure] retry storm: {retried:.0f} retries for {calls} calls ({retried / calls:.1%}) in {elapsed:.1f}s")
    assert set(statuses) == {503}
    # 10% of calls, the bucket's initial 4 tokens, and the floor of 3 retries per second of the storm.
    assert retried <= 0.1 * calls + 4 + 3 * elapsed


def _sample(metrics: str, series: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    pytest.fail(f"{series} not in /metrics")
