"""The service as generated plus routes under ``/test`` that drive its dependencies, for tests only.

They exercise the same machinery an API route uses (guards, sessions, the cache, every middleware)
without depending on any particular API, so the failure tests hold for every service built from here.
gunicorn serves it as ``tests.routes:create_test_app()``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.features import Feature
from {{ cookiecutter.package_name }}.middleware import BODY_LIMIT
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.state import CacheDep, StateDep

router = APIRouter(prefix="/test")


@router.get("/query")
async def read(state: StateDep) -> dict[str, int]:
    """One ``SELECT 1`` through the database's guard, retried as a read is."""
    return {"value": await state.database.run(_select_one, idempotent=True)}


@router.post("/query")
async def write(state: StateDep) -> dict[str, int]:
    """The same query under a write's policy: never retried."""
    return {"value": await state.database.run(_select_one)}


@router.post("/echo")
async def echo(body: dict[str, object]) -> dict[str, int]:
    """A JSON body parsed whole, as an API route's is: how many keys it held."""
    return {"keys": len(body)}


@router.post("/upload", openapi_extra={BODY_LIMIT: 4 * 1024 * 1024})
async def upload(request: Request) -> dict[str, int]:
    """A route that allows bodies over MAX_BODY_BYTES, up to 4 MiB: how many bytes it read."""
    return {"bytes": len(await request.body())}


@router.get("/crash")
async def crash() -> None:
    """A bug: an exception that no handler answers, which the service turns into a 500."""
    raise RuntimeError("a bug in a route")


@router.get("/bug/{kind}")
async def bug(kind: str) -> None:
    """A route's own code failing with the errors a driver also raises: each a bug, never a dependency's 503."""
    if kind == "missing-file":
        Path("/nonexistent/config.toml").read_text()  # noqa: ASYNC240 - the bug being shown
    elif kind == "own-timeout":
        async with asyncio.timeout(0.001):
            await asyncio.sleep(1)
    elif kind == "unguarded-client":
        await asyncio.open_connection("127.0.0.1", 1)  # nothing listens on port 1: ConnectionRefusedError
    raise HTTPException(404, f"No bug named {kind!r}.")


@router.get("/sleep")
async def sleep(seconds: float, state: StateDep) -> dict[str, str]:
    """Hold a connection for ``seconds`` (pg_sleep), through the guard."""

    async def sleep(session: AsyncSession) -> None:
        await session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})

    await state.database.run(sleep)
    return {"status": "slept"}


@router.get("/cache/{key}")
async def cache_get(key: str, cache: CacheDep) -> Response:
    value = await cache.get(key)
    if value is None:
        raise HTTPException(404, f"No cached value for {key!r}.")
    return Response(value, media_type="application/octet-stream")


@router.get("/cached/{key}")
async def cached_read(key: str, state: StateDep, cache: CacheDep) -> Response:
    """A read through the cache, as a real route's: a miss asks the database and fills the cache."""

    async def load() -> bytes:
        return str(await state.database.run(_select_one, idempotent=True)).encode()

    return Response(await cache.get_or_load(key, load), media_type="application/octet-stream")


@router.put("/cache/{key}", status_code=204)
async def cache_set(key: str, request: Request, cache: CacheDep) -> None:
    await cache.set(key, await request.body())


async def _select_one(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT 1"))).scalar_one())


def create_test_app(settings: Settings | None = None, *extra: Feature) -> FastAPI:
    """The service with these routes plugged in as a part, and any ``extra`` parts after them."""
    return create_app(settings, extra=(Feature("test-routes", routers=[router]), *extra))
