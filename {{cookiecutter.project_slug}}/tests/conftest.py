"""Fixtures shared by every kind of test: settings from a clean environment, an app client, real servers.

The servers start on first use, once per session; each test using ``services_settings`` starts from an
empty table and an empty cache.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import text

from {{ cookiecutter.package_name }} import migrations
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.db import create_engine
from {{ cookiecutter.package_name }}.settings import DbSettings, Settings
from tests.servers import ServerHandle, postgres_server, redis_server

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SettingsFactory:
    """Settings from exactly the given variables, on top of a SQLite file private to the test."""

    def make(**env: str) -> Settings:
        for name in list(os.environ):
            if name.isupper() and not name.startswith(("PATH", "HOME", "PYTEST", "PROMETHEUS", "REQUIRE", "TEST")):
                monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return Settings.from_env()

    return make


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give a client that talks to it in-process."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await migrations.upgrade(settings.db)
    async with serve(create_app(settings)) as client:
        yield client


@pytest.fixture
def captured_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[str]]]:
    """The JSON lines the app wrote to stdout so far."""
    yield lambda: [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


@pytest.fixture(scope="session")
def postgres() -> Iterator[ServerHandle]:
    server = postgres_server()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server_handle() -> Iterator[ServerHandle]:
    server = redis_server()
    yield server
    server.close()


@pytest.fixture(scope="session")
async def migrated(postgres: ServerHandle) -> str:
    await migrations.upgrade(DbSettings(url=SecretStr(postgres.url)))
    return postgres.url


@pytest.fixture
async def services_settings(
    make_settings: SettingsFactory, migrated: str, redis_server_handle: ServerHandle
) -> AsyncIterator[Settings]:
    """Settings pointing at the real servers, after emptying the table and the cache."""
    settings = make_settings(DATABASE_URL=migrated, REDIS_URL=redis_server_handle.url)
    engine = create_engine(settings.db)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE items RESTART IDENTITY"))
    await engine.dispose()
    async with Redis.from_url(redis_server_handle.url) as client:
        await client.flushdb()
    yield settings
