"""B of ``make bench``: a bare FastAPI app doing the same work as the service, with nothing around it.

No middleware, no metrics, no logs, no resilience, no cache. Served by the same gunicorn worker class
(so the same uvloop and httptools) and reading the same ``items`` table through an engine built with
the service's own pool settings, which ``bench/run.py`` passes in ``BENCH_ENGINE`` (JSON, taken from
the baked service's ``check-config``). The handlers do the same work as the service's: the liveness
route returns the same bytes, the read and the insert run the same SQL and serialise the same way.

The by-id read is there three ways, each a reference for the service's cached read: through the ORM (a
session's ``get``), through SQLAlchemy Core (``select ... where id = :id`` on a pooled connection) and
through asyncpg alone (``fetchrow`` on an ``asyncpg`` pool as large as the service's), the fastest way
Python can ask PostgreSQL for a row.

With ``BENCH_INSTRUMENTATOR=1`` the app also gets prometheus-fastapi-instrumentator's middleware, the HTTP
metrics the service records itself under the same names: the contrast row that says why it does.

    PYTHONPATH=<template root> DATABASE_URL=... BENCH_ENGINE='{...}' \
        gunicorn -k <package>.worker.Worker 'bench.bare_app:create()'
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, String, Text, bindparam, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.responses import Response


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ItemCreate(BaseModel):
    name: str
    description: str | None = None


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: datetime


class ItemPage(BaseModel):
    items: list[ItemOut]
    limit: int
    offset: int


def engine_options(cfg: dict[str, Any]) -> dict[str, Any]:
    """``create_async_engine`` arguments equal to the service's for the same settings (its ``db`` group)."""
    return {
        "pool_pre_ping": cfg["pool_pre_ping"],
        "pool_size": cfg["pool_size"],
        "max_overflow": cfg["max_overflow"],
        "pool_timeout": cfg["pool_timeout_seconds"],
        "pool_recycle": cfg["pool_recycle_seconds"],
        "connect_args": {
            "timeout": cfg["connect_timeout_seconds"],
            "command_timeout": cfg["statement_timeout_ms"] / 1000 + 1,
            "server_settings": {"statement_timeout": str(cfg["statement_timeout_ms"]), "application_name": "bare"},
        },
    }


def create() -> FastAPI:
    url = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql+asyncpg")
    cfg = json.loads(os.environ["BENCH_ENGINE"])
    options = engine_options(cfg)
    engine = create_async_engine(url, **options)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    by_id = select(Item.__table__).where(Item.id == bindparam("item_id"))
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools.append(
            await asyncpg.create_pool(
                url.set(drivername="postgresql").render_as_string(hide_password=False),
                min_size=cfg["pool_size"],
                max_size=cfg["pool_size"] + cfg["max_overflow"],
                timeout=options["connect_args"]["timeout"],
                command_timeout=options["connect_args"]["command_timeout"],
                server_settings=options["connect_args"]["server_settings"],
            )
        )
        yield
        await pools[0].close()
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    if os.environ.get("BENCH_INSTRUMENTATOR") == "1":
        from prometheus_fastapi_instrumentator import Instrumentator  # the bake's dev extra has it

        Instrumentator().instrument(app)

    @app.get("/bench/noop")  # first after FastAPI's own routes, as in bench/app_with_noop.py
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/health/live")
    async def live() -> Response:
        return Response(
            orjson.dumps({"status": "pass"}), media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    @app.get("/api/v1/items/{item_id}")
    async def get_item(item_id: int) -> Response:
        async with sessions() as session:
            item = await session.get(Item, item_id)
        if item is None:
            return Response(b'{"detail":"not found"}', status_code=404, media_type="application/json")
        return Response(ItemOut.model_validate(item).model_dump_json().encode(), media_type="application/json")

    @app.get("/bench/core/items/{item_id}")
    async def get_item_core(item_id: int) -> Response:
        async with engine.connect() as conn:
            row = (await conn.execute(by_id, {"item_id": item_id})).first()
        if row is None:
            return Response(b'{"detail":"not found"}', status_code=404, media_type="application/json")
        return Response(ItemOut.model_validate(row._mapping).model_dump_json().encode(), media_type="application/json")

    @app.get("/bench/asyncpg/items/{item_id}")
    async def get_item_asyncpg(item_id: int) -> Response:
        row = await pools[0].fetchrow("SELECT id, name, description, created_at FROM items WHERE id = $1", item_id)
        if row is None:
            return Response(b'{"detail":"not found"}', status_code=404, media_type="application/json")
        return Response(ItemOut.model_validate(dict(row)).model_dump_json().encode(), media_type="application/json")

    @app.get("/api/v1/items")  # the overload row's page, as the service's: the ORM, a response model
    async def list_items(limit: int = 20, offset: int = 0) -> ItemPage:
        async with sessions() as session:
            items = await session.scalars(select(Item).order_by(Item.id).limit(limit).offset(offset))
            return ItemPage(items=[ItemOut.model_validate(item) for item in items], limit=limit, offset=offset)

    @app.post("/api/v1/items", status_code=201)
    async def create_item(data: ItemCreate) -> Response:
        async with sessions() as session:
            item = (await session.scalars(insert(Item).values(**data.model_dump()).returning(Item))).one()
            await session.commit()
        body = ItemOut.model_validate(item).model_dump_json().encode()
        return Response(body, status_code=201, media_type="application/json")

    return app
