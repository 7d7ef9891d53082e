"""The async SQLAlchemy engine, sessions and pool statistics.

``create_engine`` is the only place an engine is built; the lifespan owns it and disposes of it.
PostgreSQL gets a server-side ``statement_timeout`` and client-side connect/command timeouts, so a
hung server costs a request its timeout, never a worker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import QueuePool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from .metrics import Metrics
from .resilience import is_failure
from .settings import DbSettings

log = logging.getLogger(__name__)
SERVICE = "{{ cookiecutter.project_slug }}"  # the application_name PostgreSQL shows for its connections


class Base(DeclarativeBase):
    """Declarative base of every table; alembic reads its metadata."""


def create_engine(cfg: DbSettings, *, application_name: str = SERVICE, timeouts: bool = True) -> AsyncEngine:
    """The engine for ``cfg``; ``timeouts=False`` lifts the statement timeouts (migrations only)."""
    url = make_url(cfg.url.get_secret_value())
    options: dict[str, Any] = {"pool_pre_ping": cfg.pool_pre_ping}
    if url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {
            "timeout": cfg.connect_timeout_seconds,
            # Client-side guard a little above the server's statement_timeout, for a server that stops answering.
            "command_timeout": cfg.statement_timeout_ms / 1000 + 1 if timeouts else None,
            "server_settings": {
                "statement_timeout": str(cfg.statement_timeout_ms if timeouts else 0),
                "application_name": application_name,
            },
        }
        sslmode = url.query.get("sslmode")
        if sslmode is not None:
            url = url.difference_update_query(["sslmode"])
            connect_args["ssl"] = sslmode
        options |= {
            "pool_size": cfg.pool_size,
            "max_overflow": cfg.max_overflow,
            "pool_timeout": cfg.pool_timeout_seconds,
            "pool_recycle": cfg.pool_recycle_seconds,
            "connect_args": connect_args,
        }
    else:
        options["connect_args"] = {"timeout": cfg.connect_timeout_seconds}
    return create_async_engine(url, **options)


def effective_pool(cfg: DbSettings) -> dict[str, Any]:
    """The pool ``create_engine`` builds for ``cfg``, in the settings' names: the DB_POOL_* values on PostgreSQL,
    SQLAlchemy's own on SQLite (5 connections, 10 more on demand, 30 s, never recycled), which ignores them.
    Connects to nothing."""
    engine = create_engine(cfg)
    pool = engine.sync_engine.pool
    engine.sync_engine.dispose()
    if not isinstance(pool, QueuePool):
        return {"pool_size": None, "max_overflow": None}
    recycle = pool._recycle  # no public accessors for these two
    return {
        "pool_size": pool.size(),
        "max_overflow": pool._max_overflow,
        "pool_timeout_seconds": pool.timeout(),
        "pool_recycle_seconds": recycle if recycle >= 0 else None,
    }


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session per request; rolled back when the request fails, closed (connection returned) always."""
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise


@asynccontextmanager
async def attempt_session(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for one guarded attempt, so that a retry starts on a fresh connection.

    A connection that failed by the infrastructure's fault is invalidated rather than rolled back: on a
    hung server the rollback would hang too, and the guard must see the failure at once.
    """
    session = factory()
    try:
        yield session
    except Exception as exc:
        if is_failure(exc):
            await session.invalidate()
        else:
            await session.close()
        raise
    else:
        await session.close()


@dataclass(frozen=True, slots=True)
class PoolStats:
    size: int
    checked_out: int
    overflow: int
    capacity: int


def pool_stats(engine: AsyncEngine) -> PoolStats | None:
    """Live numbers of a queue pool; None for pools that keep no count (SQLite's, for instance)."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return None
    return PoolStats(
        size=pool.size(),
        checked_out=pool.checkedout(),
        overflow=max(pool.overflow(), 0),
        capacity=pool.size() + pool._max_overflow,  # no public accessor
    )


def pool_sampler(engine: AsyncEngine) -> Callable[[Metrics], None]:
    def sample(metrics: Metrics) -> None:
        stats = pool_stats(engine)
        if stats is not None:
            metrics.pool_size.set(stats.size)
            metrics.pool_checked_out.set(stats.checked_out)
            metrics.pool_overflow.set(stats.overflow)
            metrics.pool_capacity.set(stats.capacity)

    return sample
