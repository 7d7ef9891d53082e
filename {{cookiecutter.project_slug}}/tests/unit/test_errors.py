"""Which failures answer 503 and which are bugs: only a guard's own failures are a dependency's outage."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import Scope

from {{ cookiecutter.package_name }}.features import Assembly, Feature
from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import SettingsFactory
from tests.routes import create_test_app


@asynccontextmanager
async def client_with_hook(settings: Settings, reported: list[BaseException]) -> AsyncIterator[httpx.AsyncClient]:
    """The test app with a part whose error hook collects every exception answered 500."""

    def hook(exc: BaseException, scope: Scope) -> None:
        reported.append(exc)

    @asynccontextmanager
    async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
        assembly.hooks.error_hooks.append(hook)
        yield

    app = create_test_app(settings, Feature("reporter", lifespan=lifespan))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        pytest.param("missing-file", FileNotFoundError, id="missing-config-file"),
        pytest.param("own-timeout", TimeoutError, id="own-asyncio-timeout"),
        pytest.param("unguarded-client", ConnectionRefusedError, id="unguarded-client-refused"),
    ],
)
async def test_a_routes_own_os_or_timeout_error_is_a_reported_500(
    kind: str,
    error: type[BaseException],
    make_settings: SettingsFactory,
    captured_logs: Callable[[], list[str]],
) -> None:
    """A route's own FileNotFoundError, asyncio.timeout or refused unguarded connection is a bug: 500 problem+json,
    logged with its traceback and handed to the error hooks, never a dependency's 503."""
    reported: list[BaseException] = []
    async with client_with_hook(make_settings(), reported) as client:
        response = await client.get(f"/test/bug/{kind}")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "retry-after" not in response.headers
    assert [type(exc) for exc in reported] == [error]
    lines = [json.loads(line) for line in captured_logs()]
    unhandled = [line for line in lines if line["message"] == "unhandled error"]
    assert len(unhandled) == 1 and f"{error.__name__}" in unhandled[0]["exception"]
    assert "Traceback" in unhandled[0]["exception"]
    assert not [line for line in lines if line["message"] == "dependency unavailable"]


async def test_a_guarded_failure_is_a_503_that_reaches_no_error_hook(make_settings: SettingsFactory) -> None:
    """The database's guard failing to reach the database answers 503 with Retry-After, naming it, unreported."""
    reported: list[BaseException] = []
    settings = make_settings(DATABASE_URL="postgresql://user:pw@127.0.0.1:1/none", DB_CONNECT_TIMEOUT_SECONDS="0.5")
    async with client_with_hook(settings, reported) as client:
        response = await client.post("/test/query")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["detail"] == "The database is unavailable."
    assert reported == []
