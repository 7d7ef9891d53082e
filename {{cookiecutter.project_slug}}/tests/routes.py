"""The service as generated plus routes under ``/test`` that drive its dependencies, for tests only.

They exercise the same machinery an API route uses (guards, sessions, the cache, every middleware)
without depending on any particular API, so the failure tests hold for every service built from here.
gunicorn serves it as ``tests.routes:create_test_app()``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Request
from sqlalchemy import text
from starlette.responses import Response

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.db import attempt_session
from {{ cookiecutter.package_name }}.middleware import BODY_LIMIT
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.state import CacheDep, StateDep

router = APIRouter(prefix="/test")


@router.get("/query")
async def read(state: StateDep) -> dict[str, int]:
    """One ``SELECT 1`` through the database's guard, retried as a read is."""
    return {"value": await state.guards.db.call(_select_one, state, idempotent=True)}


@router.post("/query")
async def write(state: StateDep) -> dict[str, int]:
    """The same query under a write's policy: never retried."""
    return {"value": await state.guards.db.call(_select_one, state)}


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


@router.get("/sleep")
async def sleep(seconds: float, state: StateDep) -> dict[str, str]:
    """Hold a connection for ``seconds`` (pg_sleep), through the guard."""
    await state.guards.db.call(_sleep, state, seconds)
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
        return str(await state.guards.db.call(_select_one, state, idempotent=True)).encode()

    return Response(await cache.get_or_load(key, load), media_type="application/octet-stream")


@router.put("/cache/{key}", status_code=204)
async def cache_set(key: str, request: Request, cache: CacheDep) -> None:
    await cache.set(key, await request.body())


async def _select_one(state: StateDep) -> int:
    async with attempt_session(state.sessions) as session:
        return int((await session.execute(text("SELECT 1"))).scalar_one())


async def _sleep(state: StateDep, seconds: float) -> None:
    async with attempt_session(state.sessions) as session:
        await session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})


def create_test_app(settings: Settings | None = None) -> FastAPI:
    app = create_app(settings)
    app.include_router(router)
    return app
