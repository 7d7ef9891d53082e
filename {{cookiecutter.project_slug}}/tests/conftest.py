"""Fixtures shared by every kind of test: settings from a clean environment, an app client, real servers.

The servers start on first use, once per session; each test using ``services_settings`` starts from
empty tables. In-process clients serve the app with its test routes (tests/routes.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text

from {{ cookiecutter.package_name }} import features, migrations
from {{ cookiecutter.package_name }}.db import create_engine
from {{ cookiecutter.package_name }}.settings import DbSettings, ServerSettings, Settings, SettingsError
from tests.routes import create_test_app
from tests.servers import ServerHandle, postgres_server

SettingsFactory = Callable[..., Settings]
# An in-process client reaches the management port (/metrics, /admin, /health/detailed) by naming it in the URL:
# httpx puts the URL's port in scope["server"], which the app reads. No test sets MANAGEMENT_PORT.
MANAGEMENT = f"http://test:{ServerSettings.model_fields['management_port'].default}"
EVERY_TABLE = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SettingsFactory:
    """Settings from exactly the given variables, on top of a SQLite file private to the test."""

    def make(**env: str) -> Settings:
        for name in list(os.environ):
            if name in features.variables():
                monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return features.load_settings()

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
    app = create_test_app(settings)  # first: it points logging at this test's stdout, which the migration logs to
    await migrations.upgrade(settings.db)
    async with serve(app) as client:
        yield client


def refusal(make_settings: SettingsFactory, **env: str) -> str:
    """The single line naming what is wrong with ``env``; fails unless the settings refuse it with exactly one."""
    with pytest.raises(SettingsError) as raised:
        make_settings(**env)
    lines = str(raised.value).splitlines()
    assert len(lines) == 1
    return lines[0]


async def problem(settings: Settings, method: str, path: str, body: bytes | None, status: int) -> dict[str, Any]:
    """The body of a request that must answer ``status`` as RFC 9457 problem+json."""
    async with client_for(settings) as client:
        response = await client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body_json: dict[str, Any] = response.json()
    return body_json


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
async def migrated(postgres: ServerHandle) -> str:
    await migrations.upgrade(DbSettings(url=SecretStr(postgres.url)))
    return postgres.url


@pytest.fixture
async def services_settings(make_settings: SettingsFactory, migrated: str) -> AsyncIterator[Settings]:
    """Settings pointing at the real PostgreSQL, after emptying every table."""
    settings = make_settings(DATABASE_URL=migrated)
    engine = create_engine(settings.db)
    async with engine.begin() as conn:
        # Every table, the models' and those a part creates with SQL of its own, but the migrations' record.
        found = await conn.scalars(text(EVERY_TABLE))
        tables = ", ".join(f'"{name}"' for name in found)
        if tables:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
    await engine.dispose()
    yield settings
