"""Fixtures shared by every kind of test: settings from a clean environment and an app client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from {{ cookiecutter.package_name }} import migrations
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings

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
