"""The composition root: ``create_app(settings)`` wires every component; the lifespan owns every resource.

Resources open in order and close in reverse through one exit stack: the database pool first in,
last out; then what the optional parts (``features/``) open; background tasks last in, first out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.telemetry import TelemetryConfig
from sqlalchemy.ext.asyncio import AsyncEngine

from . import __version__, admin, cache, db, errors, features, health, migrations, overload
from .metrics import Metrics
from .middleware import BodyLimits, RequestMiddleware
from .observability import AccessLog, RequestWatcher, configure_logging
from .resilience import Deadlines, Dependency
from .resilience.admission import Admission
from .schema import SchemaGuard
from .settings import Settings
from .shutdown import Lifecycle, closing, drain_on_sigterm
from .state import Guards, State

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings if settings is not None else Settings.from_env()
    configure_logging(settings.service.log_level)
    lifecycle = Lifecycle()
    metrics = Metrics()
    deadlines = Deadlines()
    access = AccessLog()
    watchers: list[RequestWatcher] = []  # the request middleware's, filled by the parts the lifespan opens
    parts = features.installed()  # before the error handlers: importing a part registers its client's errors
    admission = overload.limit_from(settings.admission) if settings.admission.enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            state = await _open(settings, lifecycle, metrics, deadlines, access, watchers, stack, admission)
            yield {"state": state}
            log.info("shutting down: closing resources")

    # FastAPI's own telemetry hooks look for a global provider on every request: off. The metrics are the
    # service's own, and an optional part that makes spans makes them with a provider of its own.
    quiet: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(title=settings.service.name, version=__version__, lifespan=lifespan, telemetry=quiet)
    errors.install(app)
    for feature in parts:
        for router in feature.routers:
            app.include_router(router)
    if settings.service.admin_token is not None:
        app.include_router(admin.build_router(settings.service.admin_token.get_secret_value()))
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    # Last: the request middleware sends probes to their router directly, so in the app's route table the probes
    # are only documented, and every other request would otherwise try their router's routes before its own.
    probes = health.build_router(settings.health, lifecycle, __version__)
    app.include_router(probes)

    app.add_middleware(
        RequestMiddleware,
        # Probes go straight to their own router, past every middleware and the app's route table: FastAPI
        # matches an included router's routes through a layer of its own, which cost liveness about 10% (see
        # `make bench` at the template root). FastAPI's innermost layer (it scopes dependencies with yield) stays.
        router=AsyncExitStackMiddleware(probes),
        probe_paths=health.probe_paths(settings.health),
        unmetered=frozenset({"/metrics"}),
        timeout=settings.service.request_timeout,
        body_limits=BodyLimits(settings.server.max_body_bytes, settings.server.body_read_timeout_seconds),
        deadlines=deadlines,
        metrics=metrics,
        access=access,
        timeout_response=errors.timeout_response,
        crash_response=errors.crash_response,
        on_crash=errors.unhandled,
        watchers=watchers,
    )
    # Outermost, so that a refusal costs nothing else (overload.py).
    exempt = health.probe_paths(settings.health) | {"/metrics"}
    app.add_middleware(overload.AdmissionMiddleware, limit=admission, exempt=exempt)
    return app


async def _open(
    settings: Settings,
    lifecycle: Lifecycle,
    metrics: Metrics,
    deadlines: Deadlines,
    access: AccessLog,
    watchers: list[RequestWatcher],
    stack: AsyncExitStack,
    admission: Admission | None,
) -> State:
    budget = settings.server.shutdown_close_seconds
    engine = db.create_engine(settings.db, application_name=settings.service.name)
    stack.push_async_callback(closing("database pool", engine.dispose, budget))
    database = Dependency(
        "database",
        settings.db_resilience,
        metrics,
        call_timeout_seconds=settings.db.statement_timeout_ms / 1000,
        critical=settings.health.db_critical,
    )
    schema = SchemaGuard(
        lambda: migrations.applied(engine), heads=migrations.shipped_heads(), known=migrations.shipped_revisions()
    )
    assembly = features.Assembly(
        settings,
        metrics,
        stack,
        engine=engine,
        watchers=watchers,
        guards=[],
        error_hooks=[],
        checks=[
            health.Check(
                "database:responseTime",
                "datastore",
                settings.health.db_critical,
                lambda: health.timed(lambda: _ping(engine)),
            ),
            health.schema_check(schema, critical=settings.health.db_critical),
            health.memory_check(settings.health.memory_warn_ratio, settings.health.memory_fail_ratio),
            *([overload.check(admission)] if admission is not None else []),
        ],
    )
    for feature in features.installed():
        if feature.open is not None:
            await feature.open(assembly)

    local = cache.LocalCache(settings.cache.local_max_items, settings.cache.local_ttl_seconds)
    state = State(
        settings=settings,
        lifecycle=lifecycle,
        metrics=metrics,
        engine=engine,
        sessions=db.create_session_factory(engine),
        cache=cache.Cache(assembly.remote_cache, settings.cache, metrics, local),
        guards=Guards(database, tuple(assembly.guards)),
        health=health.HealthChecks(
            assembly.checks, timeout=settings.health.check_timeout_seconds, ttl=settings.health.cache_ttl_seconds
        ),
        schema=schema,
        error_hooks=tuple(assembly.error_hooks),
    )
    tasks = [
        asyncio.create_task(
            metrics.sample_forever(
                [db.pool_sampler(engine), deadlines.sample_in_flight]
                + ([overload.sampler(admission)] if admission is not None else [])
            ),
            name="metrics-sampler",
        ),
        asyncio.create_task(deadlines.watch(), name="request-deadlines"),
        asyncio.create_task(access.flush_forever(), name="access-log"),
    ]
    stack.push_async_callback(closing("background tasks", lambda: _cancel(tasks), budget))
    stack.callback(drain_on_sigterm(lifecycle, asyncio.get_running_loop()))
    log.info(
        "started",
        extra={
            "database": settings.db.masked_url,
            "cache": state.cache.backend,
            "mode": "embedded (SQLite, in-process cache)"
            if settings.db.is_sqlite and assembly.remote_cache is None
            else "external",
        },
    )
    lifecycle.started = True
    return state


async def _ping(engine: AsyncEngine) -> None:
    # Autocommit: one round trip for the query instead of BEGIN, SELECT and ROLLBACK.
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("SELECT 1")


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
