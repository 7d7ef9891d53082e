"""The composition root: ``create_app(settings)`` wires every component; the lifespan owns every resource.

Every part plugs in the same way (``features.Feature``): the database first (``database.py``), then the optional
parts of ``features/``. Their lifespans open in order and close in reverse through one exit stack, the database
pool first in, last out; background tasks last in, first out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.telemetry import TelemetryConfig

from . import __version__, cache, database, errors, features, management, overload, probes
from .cache import RemoteCache
from .checks import HealthChecks, memory_check
from .db import Database, pool_sampler
from .features import Assembly, Feature
from .metrics import Metrics
from .middleware import BodyLimits, Limits, ManagementPort, ProbeShortcut, RequestMiddleware, Telemetry
from .observability import AccessLog, RequestHooks, configure_logging
from .resilience import Deadlines, Guards
from .settings import Settings
from .shutdown import Lifecycle, closing, drain_on_sigterm
from .state import State

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, extra: Sequence[Feature] = ()) -> FastAPI:
    """The service; ``extra`` parts plug in after the installed ones, as a test's own routes and hooks do."""
    settings = settings if settings is not None else features.load_settings()
    configure_logging(settings.service.log_level)
    parts = (database.feature, *features.installed(), *extra)
    lifecycle = Lifecycle()
    metrics = Metrics()
    deadlines = Deadlines()
    access = AccessLog()
    hooks = RequestHooks()
    guards = Guards()
    checks = HealthChecks(timeout=settings.health.check_timeout_seconds, ttl=settings.health.cache_ttl_seconds)
    checks.add(memory_check(settings.health.memory_warn_ratio, settings.health.memory_fail_ratio))
    admission = overload.limit_from(settings.admission) if settings.admission.enabled else None
    samplers = [] if admission is None else [overload.sampler(admission)]
    if admission is not None:
        checks.add(overload.check(admission))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        assembly = Assembly(settings, metrics, lifecycle, checks, guards, hooks)
        async with AsyncExitStack() as stack:
            yield {"state": await _open(parts, assembly, deadlines, access, samplers, stack)}
            log.info("shutting down: closing resources")

    # FastAPI's own telemetry hooks look for a global provider on every request: off. The metrics are the
    # service's own, and an optional part that makes spans makes them with a provider of its own.
    quiet: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(title=settings.service.name, version=__version__, lifespan=lifespan, telemetry=quiet)
    errors.install(app)
    for part in parts:
        for router in part.routers:
            app.include_router(router)
    # Last: the request middleware sends probes to their router directly, so in the app's route table the probes
    # are only documented, and every other request would otherwise try their router's routes before its own.
    probe_router = probes.build_router(settings.health, lifecycle, checks, version=__version__)
    app.include_router(probe_router)
    detailed_health = probes.build_detailed_router(
        settings.health, lifecycle, checks, guards, service=settings.service.name, version=__version__
    )

    app.add_middleware(
        RequestMiddleware,
        # /metrics, /admin and /health/detailed: on the management port only, which nothing but monitoring reaches.
        management=ManagementPort(
            settings.server.management_port, management.build_app(settings, metrics, detailed_health)
        ),
        # Probes go straight to their own router, past every middleware and the app's route table: FastAPI
        # matches an included router's routes through a layer of its own, which cost liveness about 10% (see
        # `make bench` at the template root). FastAPI's innermost layer (it scopes dependencies with yield) stays.
        probes=ProbeShortcut(probes.probe_paths(settings.health), AsyncExitStackMiddleware(probe_router)),
        limits=Limits(
            settings.service.request_timeout,
            BodyLimits(settings.server.max_body_bytes, settings.server.body_read_timeout_seconds),
            deadlines,
        ),
        telemetry=Telemetry(metrics, access),
        hooks=hooks,
    )
    # Outermost, so that a refusal costs nothing else (overload.py); probes and the management port never wait.
    exempt = probes.probe_paths(settings.health)
    app.add_middleware(
        overload.AdmissionMiddleware, limit=admission, exempt=exempt, management_port=settings.server.management_port
    )
    return app


async def _open(
    parts: Sequence[Feature],
    assembly: Assembly,
    deadlines: Deadlines,
    access: AccessLog,
    samplers: list[Callable[[Metrics], None]],
    stack: AsyncExitStack,
) -> State:
    """Open every part in order (the database first), then the state and the background tasks."""
    for part in parts:
        if part.lifespan is not None:
            await stack.enter_async_context(part.lifespan(assembly))
    settings, metrics = assembly.settings, assembly.metrics
    database = assembly.get(Database)
    remote = assembly.find(RemoteCache)
    local = cache.LocalCache(settings.cache.local_max_items, settings.cache.local_ttl_seconds)
    shared = cache.Cache(remote, settings.cache, metrics, local)
    assembly.provide(cache.Cache, shared)  # for a part's background work, which reads it once every part is open
    state = State(
        settings=settings,
        lifecycle=assembly.lifecycle,
        metrics=metrics,
        database=database,
        cache=shared,
        guards=assembly.guards,
        health=assembly.checks,
        resources=dict(assembly.resources),
    )

    def in_flight(metrics: Metrics) -> None:
        metrics.requests_in_progress.set(len(deadlines.in_flight))

    samplers = [pool_sampler(database.engine), in_flight, *samplers]
    tasks = [
        asyncio.create_task(metrics.sample_forever(samplers), name="metrics-sampler"),
        asyncio.create_task(deadlines.watch(), name="request-deadlines"),
        asyncio.create_task(access.flush_forever(), name="access-log"),
    ]
    budget = settings.server.shutdown_close_seconds
    stack.push_async_callback(closing("background tasks", lambda: _cancel(tasks), budget))
    stack.callback(drain_on_sigterm(assembly.lifecycle, asyncio.get_running_loop()))
    log.info(
        "started",
        extra={
            "database": settings.db.masked_url,
            "cache": state.cache.backend,
            "mode": "embedded (SQLite, in-process cache)" if settings.db.is_sqlite and remote is None else "external",
        },
    )
    assembly.lifecycle.started = True
    return state


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
