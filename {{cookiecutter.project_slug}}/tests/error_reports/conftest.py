"""A local receiver for the SDK's envelopes, settings full of secrets, and the app with routes that fail."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import APIRouter, Header
from sqlalchemy import text

from {{ cookiecutter.package_name }}.db import attempt_session
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.state import StateDep
from tests.conftest import SettingsFactory, serve
from tests.error_reports.receiver import Receiver
from tests.routes import create_test_app

router = APIRouter(prefix="/test")


@router.post("/crash-holding-secrets")
async def crash_holding_secrets(body: dict[str, object], state: StateDep, authorization: str = Header("")) -> None:
    """A bug whose message and local variables hold the database URL, a token and the caller's credentials, on a
    request whose body holds a card number."""
    database_url = state.settings.db.url.get_secret_value()
    admin_token = state.settings.service.admin_token.get_secret_value() if state.settings.service.admin_token else ""
    raise RuntimeError(f"cannot use {database_url} with {admin_token} for {authorization}")


@router.get("/bad-sql")
async def bad_sql(state: StateDep) -> None:
    """A query the database refuses as malformed: the code's bug, answered 500 by the database error handler."""
    async with attempt_session(state.database.sessions) as session:
        await session.execute(text("SELEC 1"))


@router.get("/wait")
async def wait(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Secrets:
    db_password: str
    admin_token: str
    health_token: str
    caller_token: str
    cookie: str
    card: str

    def all(self) -> dict[str, str]:
        return dict(vars(self))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def secret() -> Secrets:
    return Secrets(
        *(f"{name}-{secrets.token_hex(8)}" for name in ("dbpw", "admin", "health", "caller", "cookie", "card"))
    )


@pytest.fixture
def reporting(make_settings: SettingsFactory, receiver: Receiver, secret: Secrets) -> SettingsFactory:
    """Settings that report to ``receiver``, with a database that is down and every secret setting set."""

    def make(**env: str) -> Settings:
        defaults = {
            "SENTRY_DSN": receiver.dsn,
            "DATABASE_URL": f"postgresql://orders:{secret.db_password}@127.0.0.1:{closed_port()}/orders",
            "DB_CONNECT_TIMEOUT_SECONDS": "0.5",
            "ADMIN_TOKEN": secret.admin_token,
            "HEALTH_TOKEN": secret.health_token,
        }
        return make_settings(**{**defaults, **env})

    return make


@asynccontextmanager
async def failing_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_test_app(settings)
    app.include_router(router)
    async with serve(app) as client:
        yield client
