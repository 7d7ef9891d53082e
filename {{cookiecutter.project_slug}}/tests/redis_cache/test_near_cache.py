"""The near cache on a real Redis: hits without a round trip, and never stale past its bound.

Two apps in one process play two workers. Worker A writes, worker B has the value in its near cache; then
Redis stays up, goes down, hangs or restarts, and B is read every 10 ms: the last time it answers the old
value must come no later than ``REDIS_NEAR_CACHE_STALENESS_SECONDS`` after A's write returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.cache import LocalCache
from {{ cookiecutter.package_name }}.features.redis_cache.near import NearCache
from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import client_for
from tests.servers import ServerHandle

BOUND = 0.5  # REDIS_NEAR_CACHE_STALENESS_SECONDS, the default


async def redis_gets(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


async def until_served_nearby(worker: httpx.AsyncClient, key: str, redis: Redis) -> None:
    """Read ``key`` through ``worker`` until a read costs Redis no GET: the value is in its near cache."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        before = await redis_gets(redis)
        assert (await worker.get(f"/test/cache/{key}")).content == b"v1"
        if await redis_gets(redis) == before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the near cache never served the value")


async def last_stale(worker: httpx.AsyncClient, key: str, since: float, seconds: float) -> float:
    """Read ``key`` every 10 ms for ``seconds``: how long after ``since`` the old value was last answered."""
    last = -1.0
    while time.monotonic() - since < seconds:
        response = await worker.get(f"/test/cache/{key}")
        assert response.status_code in (200, 404)
        if response.content == b"v1":
            last = time.monotonic() - since
        await asyncio.sleep(0.01)
    return last


async def write_confirmed(writer: httpx.AsyncClient, key: str, redis_url: str) -> None:
    """Write v2 through ``writer`` until Redis holds it (after a restart the first write may meet a dead connection)."""
    async with Redis.from_url(redis_url) as redis:
        for _ in range(50):
            assert (await writer.put(f"/test/cache/{key}", content=b"v2")).status_code == 204
            if await redis.get(key) == b"v2":
                return
            await asyncio.sleep(0.1)
    raise AssertionError("the write never reached Redis")


@pytest.mark.parametrize("redis_is", ["up", "down", "hung", "restarting"])
async def test_a_write_is_never_served_stale_past_the_bound(
    redis_settings: Settings, redis_handle: ServerHandle, redis_is: str
) -> None:
    async with (
        client_for(redis_settings) as writer,
        client_for(redis_settings) as reader,
        Redis.from_url(redis_handle.url) as redis,
    ):
        assert (await writer.put("/test/cache/k", content=b"v1")).status_code == 204
        await until_served_nearby(reader, "k", redis)
        if redis_is == "up":
            await write_confirmed(writer, "k", redis_handle.url)
        elif redis_is == "restarting":
            redis_handle.stop()
            redis_handle.start()
            await write_confirmed(writer, "k", redis_handle.url)
        else:
            redis_handle.stop() if redis_is == "down" else redis_handle.pause()
            assert (await writer.put("/test/cache/k", content=b"v2")).status_code == 204  # Redis can't take it
        written = time.monotonic()
        stale = await last_stale(reader, "k", written, BOUND + 1.0)
    when = "never after the write" if stale < 0 else f"last {stale * 1000:.0f} ms after the write"
    print(f"\n[figure] near cache, Redis {redis_is}: old value served {when}")
    assert stale <= BOUND


async def test_a_hit_costs_redis_nothing(redis_settings: Settings, redis_handle: ServerHandle) -> None:
    """A hundred reads of a value in the near cache send Redis no command at all."""
    async with client_for(redis_settings) as worker, Redis.from_url(redis_handle.url) as redis:
        await redis.set("k", b"v1")
        await until_served_nearby(worker, "k", redis)
        before = await redis_gets(redis)
        bodies = {(await worker.get("/test/cache/k")).content for _ in range(100)}
        after = await redis_gets(redis)
    assert bodies == {b"v1"}
    assert after == before


@pytest.fixture
async def near(redis_handle: ServerHandle) -> AsyncIterator[NearCache]:
    async with Redis.from_url(redis_handle.url) as client:
        near = NearCache(client.connection_pool, LocalCache(100, 30), BOUND)
        near.start()
        deadline = time.monotonic() + 5
        while not near.live:
            assert time.monotonic() < deadline, "the listener never answered"
            await asyncio.sleep(0.01)
        yield near
        await near.close()


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 2
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_a_read_that_overlaps_a_change_keeps_nothing(near: NearCache, redis_handle: ServerHandle) -> None:
    """A value read before a write but brought back after its invalidation arrived is not kept."""
    async with Redis.from_url(redis_handle.url) as other:
        generation = near.begin("k")
        await other.set("k", b"new")
        await asyncio.sleep(0.1)  # the invalidation arrives while the read is on its way
        near.end("k", generation, b"old")
        assert near.get("k") is None
        near.end("k", near.begin("k"), b"new")  # a read that overlapped nothing is kept
        assert near.get("k") == b"new"
        await other.flushdb()
        await until(lambda: near.get("k") is None)
