"""A Redis server for the session, and settings that point the service at it beside the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import SettingsFactory
from tests.redis_cache.servers import redis_server
from tests.servers import ServerHandle


@pytest.fixture(scope="session")
def redis_handle() -> Iterator[ServerHandle]:
    server = redis_server()
    yield server
    server.close()


@pytest.fixture
async def redis_settings(
    services_settings: Settings, make_settings: SettingsFactory, redis_handle: ServerHandle
) -> AsyncIterator[Settings]:
    """Settings for real PostgreSQL and an empty Redis; whatever a test did to Redis, the next finds it running."""
    async with Redis.from_url(redis_handle.url) as client:
        await client.flushdb()
    yield make_settings(DATABASE_URL=services_settings.db.url.get_secret_value(), REDIS_URL=redis_handle.url)
    redis_handle.resume()
    redis_handle.start()
