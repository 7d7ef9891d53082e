"""The Redis test server, and the fault proxy's modes, against a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tests.faults import FaultProxy
from tests.redis_cache.servers import redis_server
from tests.servers import ServerHandle

# These tests stop and pause their server, so they own it instead of sharing the session's.


@pytest.fixture(scope="module")
def rd() -> Iterator[ServerHandle]:
    server = redis_server()
    yield server
    server.close()


def redis_client(url: str, *, timeout: float = 1.0) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(url, socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


async def test_redis_stop_refuses_and_start_serves_the_same_url(rd: ServerHandle) -> None:
    """A stopped Redis refuses connections, and after start() the same url answers PING."""
    async with redis_client(rd.url) as client:
        assert await client.ping()
        await asyncio.to_thread(rd.stop)
        with pytest.raises(redis.ConnectionError):
            await client.ping()
        await asyncio.to_thread(rd.start)
        assert await client.ping()


async def test_redis_pause_times_out_and_resume_recovers(rd: ServerHandle) -> None:
    """A paused Redis makes a PING with a 1 s timeout time out; after resume() it answers again."""
    async with redis_client(rd.url, timeout=1) as client:
        assert await client.ping()
        await asyncio.to_thread(rd.pause)
        try:
            with pytest.raises(redis.TimeoutError):
                await client.ping()
        finally:
            await asyncio.to_thread(rd.resume)
        assert await client.ping()


async def test_proxy_latency_delays_each_round_trip(rd: ServerHandle) -> None:
    """With latency(0.1) a PING through the proxy takes at least 0.1 s longer, and pass_through() removes it."""
    async with FaultProxy.for_url(rd.url) as proxy, redis_client(proxy.url_for(rd.url)) as client:
        assert await client.ping()
        proxy.latency(0.1)
        started = time.monotonic()
        assert await client.ping()
        assert time.monotonic() - started >= 0.1
        proxy.pass_through()
        started = time.monotonic()
        assert await client.ping()
        assert time.monotonic() - started < 0.1


async def test_proxy_blackhole_times_out_and_pass_through_recovers(rd: ServerHandle) -> None:
    """Through a blackholed proxy a PING times out; pass_through() lets the next one answer."""
    async with FaultProxy.for_url(rd.url) as proxy, redis_client(proxy.url_for(rd.url), timeout=0.5) as client:
        assert await client.ping()
        proxy.blackhole()
        with pytest.raises(redis.TimeoutError):
            await client.ping()
        proxy.pass_through()
        assert await client.ping()


async def test_proxy_reset_raises_connection_error(rd: ServerHandle) -> None:
    """reset() aborts open and new connections, so a PING raises ConnectionError until pass_through()."""
    async with FaultProxy.for_url(rd.url) as proxy, redis_client(proxy.url_for(rd.url)) as client:
        assert await client.ping()
        proxy.reset()
        with pytest.raises(redis.ConnectionError):
            await client.ping()  # the open connection was reset
        with pytest.raises(redis.ConnectionError):
            await client.ping()  # a new connection is reset on accept
        proxy.pass_through()
        assert await client.ping()


async def test_proxy_down_refuses_and_up_recovers(rd: ServerHandle) -> None:
    """down() refuses connections on the proxy's port; up() listens on the same port again."""
    async with FaultProxy.for_url(rd.url) as proxy, redis_client(proxy.url_for(rd.url)) as client:
        assert await client.ping()
        proxy.down()
        with pytest.raises(redis.ConnectionError):
            await client.ping()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.up()
        assert await client.ping()


def test_proxy_in_a_thread_serves_sync_clients(rd: ServerHandle) -> None:
    """run_in_thread() serves blocking clients, and faults set from the test's thread apply at once."""
    proxy = FaultProxy.for_url(rd.url)
    with proxy.run_in_thread(), redis.Redis.from_url(proxy.url_for(rd.url), socket_timeout=1) as client:
        assert client.ping()
        proxy.down()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        proxy.up()
        assert client.ping()
