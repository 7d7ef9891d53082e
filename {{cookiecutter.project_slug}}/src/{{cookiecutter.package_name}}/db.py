"""The database: the async SQLAlchemy engine, the guarded ``Database`` routes use, its errors, checks and pool stats.

``create_engine`` is the only place an engine is built; the lifespan owns it and disposes of it (``database.py``).
PostgreSQL gets a server-side ``statement_timeout`` and client-side connect/command timeouts, so a hung server
costs a request its timeout, never a worker. Work reaches the database only through ``Database.run``: a session
of its own per attempt, under the guard (breaker, bulkhead, retries for idempotent work, the request deadline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import QueuePool
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from .checks import Check, Result
from .metrics import Metrics
from .resilience import DependencyUnavailable, Guard
from .schema import SchemaGuard, missing_object
from .settings import DbSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
SERVICE = "{{ cookiecutter.project_slug }}"  # the application_name PostgreSQL shows for its connections


class Base(DeclarativeBase):
    """Declarative base of every table; alembic reads its metadata."""


class DatabaseErrors:
    """The database guard's classifier: which of asyncpg's and SQLAlchemy's errors are the database's failures.

    Connection loss, timeouts (statement, command, pool) and the SQLSTATEs of a server shutting down or refusing
    connections for now count; so do serialization failures and deadlocks, which a second attempt may cure. A
    caller's error (integrity, a bad statement) never does.
    """

    # serialization failure, deadlock, admin/crash shutdown, cannot connect now, too many connections
    TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})
    CONNECTION = (ConnectionError, OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
    TIMEOUTS = (TimeoutError, asyncpg.QueryCanceledError, sa_exc.TimeoutError)

    def is_failure(self, exc: BaseException) -> bool:
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return True
        root = _root(exc)
        if isinstance(root, self.CONNECTION + self.TIMEOUTS):
            return True
        return getattr(root, "sqlstate", None) in self.TRANSIENT_SQLSTATES

    def is_transient(self, exc: BaseException) -> bool:
        return self.is_failure(exc) and not isinstance(_root(exc), self.TIMEOUTS)

    def is_local_wait(self, exc: BaseException) -> bool:
        return isinstance(exc, sa_exc.TimeoutError) and not isinstance(exc, sa_exc.DBAPIError)  # the pool's queue


ERRORS = DatabaseErrors()


def _root(exc: BaseException) -> BaseException:
    """The driver's error behind SQLAlchemy's wrapper."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
        return getattr(orig, "__cause__", None) or orig
    return exc


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
        if ERRORS.is_failure(exc):
            await session.invalidate()
        else:
            await session.close()
        raise
    else:
        await session.close()


class Database:
    """The database as routes and parts reach it: each unit of work on a session of its own, under the guard.

    A failure of the database answers 503 (``DependencyUnavailable``): the pool exhausted, "The database is
    busy."; a missing table or column while the database is behind the code's migrations, "Database migrations
    pending.". Any other error of the work is the caller's, raised as it is.
    """

    def __init__(self, engine: AsyncEngine, guard: Guard, schema: SchemaGuard, metrics: Metrics) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.guard = guard
        self.schema = schema
        self._pool_timeouts = metrics.pool_timeouts

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]], *, idempotent: bool = False) -> T:
        """``await work(session)`` under the guard; only ``idempotent`` work is retried, each time on a new session."""
        try:
            return await self.guard.call(self._attempt, work, idempotent=idempotent)
        except DependencyUnavailable as exc:
            if isinstance(exc.__cause__, sa_exc.TimeoutError):
                self._pool_timeouts.inc()
                raise DependencyUnavailable(self.guard.name, "The database is busy.") from exc.__cause__
            raise
        except sa_exc.DBAPIError as exc:
            if missing_object(exc) and await self._behind():
                raise DependencyUnavailable(self.guard.name, "Database migrations pending.", retry_after=5) from exc
            raise

    async def _attempt(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with attempt_session(self.sessions) as session:
            return await work(session)

    async def _behind(self) -> bool:
        """Whether a missing table is the database lagging behind the code (503), or the code's own bug (500)."""
        try:
            return await self.schema.pending() is not None
        except Exception:  # the database went away meanwhile: the missing table is still most likely the schema's
            return True


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


def ping_check(engine: AsyncEngine, *, critical: bool) -> Check:
    """The database answers ``SELECT 1``, in autocommit: one round trip instead of BEGIN, SELECT and ROLLBACK."""

    async def run() -> Result:
        started = time.perf_counter()
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("SELECT 1")
        return Result("pass", round((time.perf_counter() - started) * 1000, 2), "ms")

    return Check("database:responseTime", "datastore", critical, run)


def pool_check(engine: AsyncEngine) -> Check:
    """The pool's connections in use, size and overflow, in ``/health/detailed``; always passing."""

    async def run() -> Result:
        pool = pool_stats(engine)
        if pool is None:
            return Result("pass", output="this pool keeps no count")
        details = {"size": pool.size, "overflow": pool.overflow, "capacity": pool.capacity}
        return Result("pass", pool.checked_out, "connections", details=details)

    return Check("database:connections", "datastore", False, run)
