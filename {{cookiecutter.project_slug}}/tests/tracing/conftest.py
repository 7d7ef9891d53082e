"""Tracing's fixtures: a real OTLP receiver, settings that send it spans, and the app with routes that log,
meet an open breaker, retry and call an upstream, each inside a request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from sqlalchemy import text

from {{ cookiecutter.package_name }}.db import attempt_session
from {{ cookiecutter.package_name }}.resilience import BreakerOpen
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.state import StateDep
from tests.conftest import SettingsFactory
from tests.routes import create_test_app
from tests.tracing.receiver import Receiver, otlp_receiver

log = logging.getLogger("tests.tracing")
router = APIRouter(prefix="/traced")
# Batches leave every 50 ms rather than 5 s: a test sees its spans at once.
QUICK = {"OTEL_BSP_SCHEDULE_DELAY": "50"}


@router.get("/log")
async def logged(state: StateDep) -> dict[str, int]:
    """A log line and a statement inside the request."""
    log.info("inside the request")
    async with attempt_session(state.database.sessions) as session:
        return {"value": int((await session.execute(text("SELECT 1"))).scalar_one())}


@router.get("/flaky")
async def flaky(state: StateDep) -> dict[str, int]:
    """A read whose first attempt loses its connection: the guard retries it."""
    attempts = 0

    async def once() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionResetError("connection reset by peer")
        return attempts

    return {"attempts": await state.database.guard.call(once, idempotent=True)}


@router.get("/refused")
async def refused(state: StateDep) -> None:
    """A call the database's breaker refuses at once."""
    state.database.guard.breaker.force_open()
    try:
        await state.database.guard.call(_never, idempotent=True)
    except BreakerOpen:
        raise HTTPException(503, "the database's breaker is open") from None
    finally:
        state.database.guard.breaker.reset()


@router.get("/upstream")
async def upstream(url: str) -> dict[str, int]:
    """A call to another service."""
    async with httpx.AsyncClient() as client:
        return {"status": (await client.get(url)).status_code}


async def _never() -> None:
    raise AssertionError("the breaker let the call through")


def create_traced_app(settings: Settings) -> FastAPI:
    app = create_test_app(settings)
    app.include_router(router)
    return app


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture
async def traced_settings(
    services_settings: Settings, make_settings: SettingsFactory, receiver: Receiver
) -> AsyncIterator[Settings]:
    """Settings for the real PostgreSQL, sending every span to the receiver."""
    yield make_settings(
        DATABASE_URL=services_settings.db.url.get_secret_value(), OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, **QUICK
    )
