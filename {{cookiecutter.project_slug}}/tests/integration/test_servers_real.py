"""The PostgreSQL test server and the fault proxy against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped,unused-ignore]  # no stubs or py.typed
import pytest

from tests.faults import FaultProxy
from tests.servers import ServerHandle, postgres_server

# These tests stop and pause their servers, so they own them instead of sharing the session's.


@pytest.fixture(scope="module")
def pg() -> Iterator[ServerHandle]:
    server = postgres_server()
    yield server
    server.close()


async def test_postgres_keeps_url_and_data_across_stop_and_start(pg: ServerHandle) -> None:
    """A stopped PostgreSQL refuses connections, and after start() the same url serves the same data."""
    conn = await asyncpg.connect(pg.url, timeout=5)
    await conn.execute("CREATE TABLE IF NOT EXISTS survivor (id int); INSERT INTO survivor VALUES (1)")
    await conn.close()
    await asyncio.to_thread(pg.stop)
    with pytest.raises(OSError):
        await asyncpg.connect(pg.url, timeout=5)
    await asyncio.to_thread(pg.start)
    conn = await asyncpg.connect(pg.url, timeout=5)
    try:
        assert await conn.fetchval("SELECT count(*) FROM survivor") >= 1
    finally:
        await conn.close()


async def test_postgres_pause_hangs_and_resume_recovers(pg: ServerHandle) -> None:
    """A paused PostgreSQL accepts the TCP connection but never answers; resume() brings answers back."""
    await asyncio.to_thread(pg.pause)
    try:
        with pytest.raises(TimeoutError):
            await asyncpg.connect(pg.url, timeout=1)
    finally:
        await asyncio.to_thread(pg.resume)
    conn = await asyncpg.connect(pg.url, timeout=5)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_proxy_carries_the_postgres_protocol(pg: ServerHandle) -> None:
    """PostgreSQL's handshake and queries pass through the proxy unchanged, password included."""
    async with FaultProxy.for_url(pg.url) as proxy:
        conn = await asyncpg.connect(proxy.url_for(pg.url), timeout=5)
        try:
            assert await conn.fetchval("SELECT current_database()") == "app"
        finally:
            await conn.close()
