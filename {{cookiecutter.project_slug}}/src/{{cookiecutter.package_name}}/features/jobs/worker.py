"""``python -m <package> worker``: the process that runs the queue's jobs, in the same image as the API.

It opens the service's parts as the API does (the database and its guard first), then lets pgqueuer's
``QueueManager`` pick jobs, each attempt run by ``Executor``: a failure goes back to the queue after a backoff
with full jitter, or stays as ``failed`` after ``JOBS_MAX_ATTEMPTS``. Losing PostgreSQL (a restart, a hang:
asyncpg's command timeout turns it into an error) stops the manager and pgqueuer's supervisor starts it again
after ``JOBS_RESTART_SECONDS``, without a process restart.

SIGTERM: stop fetching at once, give the running jobs ``JOBS_SHUTDOWN_SECONDS``, then cancel what is left and
put it back in the queue for another worker; close the parts and exit 0. A SIGKILLed worker's jobs stop
beating and are picked again once ``JOBS_LEASE_SECONDS`` have passed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import orjson
import pgqueuer
from pgqueuer import AsyncpgPoolDriver, Queries, QueueManager, RetryRequested
from pgqueuer.executors import AbstractEntrypointExecutor, EntrypointExecutorParameters
from pgqueuer.models import Context
from pgqueuer.models import Job as QueuedJob
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ... import database, features
from ...cache import Cache, LocalCache, RemoteCache
from ...checks import HealthChecks
from ...db import Database
from ...metrics import Metrics
from ...observability import RequestHooks
from ...resilience import Guards
from ...settings import DbSettings, Settings
from ...shutdown import Lifecycle, closing
from .. import Assembly, Feature
from .probes import ProbeServer, Ticker
from .queue import Job, JobQueue, backlog
from .run import Released, attempt, record

log = logging.getLogger(__name__)


def asyncpg_dsn(cfg: DbSettings) -> str:
    return make_url(cfg.url.get_secret_value()).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Executor(AbstractEntrypointExecutor):
    """One attempt of a job under pgqueuer: its outcome counted and logged, a failure retried or kept."""

    queue: JobQueue
    released: asyncio.Event

    async def execute(self, job: QueuedJob, context: Context) -> None:
        headers = job.headers or {}
        request_id = headers.get("request_id")
        ours = Job(
            job.id,
            job.entrypoint,
            orjson.loads(job.payload or b"{}"),
            job.attempts + 1,
            request_id if isinstance(request_id, str) else None,
        )
        started = time.monotonic()
        try:
            await attempt(self.queue, ours, self.released)
        except Released:
            record(self.queue, ours, "released", started)
            raise RetryRequested(timedelta(0), "released: the worker shut down") from None
        except Exception as exc:
            if ours.attempt >= self.queue.cfg.max_attempts:
                record(self.queue, ours, "failed", started, exc)
                raise  # pgqueuer keeps it as failed, with this traceback in its log
            record(self.queue, ours, "retried", started, exc)
            wait = timedelta(seconds=self.queue.backoff.wait(ours.attempt))
            raise RetryRequested(wait, repr(exc)) from exc
        record(self.queue, ours, "succeeded", started)


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(serve(settings))


async def serve(settings: Settings, extra: Sequence[Feature] = ()) -> int:
    """Run jobs until SIGTERM or SIGINT; ``extra`` parts plug in after the installed ones (a test's job types)."""
    if settings.db.is_sqlite:
        log.error("the worker needs PostgreSQL (DATABASE_URL); on the embedded SQLite the service runs its own jobs")
        return 2
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(directory, exist_ok=True)
    metrics = Metrics()
    lifecycle = Lifecycle()
    checks = HealthChecks(timeout=settings.health.check_timeout_seconds, ttl=settings.health.cache_ttl_seconds)
    assembly = Assembly(settings, metrics, lifecycle, checks, Guards(), RequestHooks())
    async with AsyncExitStack() as stack:
        for part in (database.feature, *features.installed(), *extra):
            if part.lifespan is not None:
                await stack.enter_async_context(part.lifespan(assembly))
        local = LocalCache(settings.cache.local_max_items, settings.cache.local_ttl_seconds)
        assembly.provide(Cache, Cache(assembly.find(RemoteCache), settings.cache, metrics, local))
        queue = assembly.get(JobQueue)
        cfg = queue.cfg
        ticker = Ticker()
        probes = ProbeServer(cfg.port, settings.health.path_prefix, metrics, ticker, cfg.stall_seconds)
        probes.start()
        stack.callback(probes.close)
        engine = assembly.get(Database).engine
        tasks = [
            asyncio.create_task(ticker.run(), name="loop-ticker"),
            asyncio.create_task(metrics.sample_forever([]), name="metrics-sampler"),
            asyncio.create_task(_sample_backlog(queue, engine, cfg.metrics_seconds), name="backlog-sampler"),
        ]
        stack.push_async_callback(_cancel, tasks)
        pool = await asyncpg.create_pool(
            asyncpg_dsn(settings.db),
            min_size=0,  # connects on first use: a worker started while PostgreSQL is down waits for it
            max_size=cfg.concurrency + 2,  # each running job's heartbeat and outcome, the dequeue, the listener
            timeout=settings.db.connect_timeout_seconds,
            command_timeout=settings.db.statement_timeout_ms / 1000 + 1,
            server_settings={"application_name": f"{settings.service.name}-worker"},
        )
        stack.push_async_callback(closing("queue pool", pool.close, settings.server.shutdown_close_seconds))
        shutdown, released = asyncio.Event(), asyncio.Event()
        _on_signals(lifecycle, shutdown, released, cfg.shutdown_seconds)
        lifecycle.started = True
        log.info("worker started", extra={"job_types": sorted(queue.handlers), "concurrency": cfg.concurrency})
        await pgqueuer.run(
            _manager(queue, pool, released),
            dequeue_timeout=timedelta(seconds=cfg.poll_seconds),
            batch_size=max(1, cfg.concurrency // 2),
            heartbeat_timeout=timedelta(seconds=cfg.lease_seconds),
            max_concurrent_tasks=cfg.concurrency,
            restart_on_failure=True,
            restart_delay=timedelta(seconds=cfg.restart_seconds),
            shutdown=shutdown,
        )
        log.info("worker stopped fetching; closing")
    return 0


def _manager(queue: JobQueue, pool: asyncpg.Pool, released: asyncio.Event):  # type: ignore[no-untyped-def]
    """The factory pgqueuer's supervisor calls for each start: a manager with every job type of the service."""

    @asynccontextmanager
    async def manager() -> AsyncIterator[QueueManager]:
        builders = queue.builders
        manager = QueueManager(Queries(AsyncpgPoolDriver(pool), qbe=builders.qbe, qbq=builders.qbq, qbs=builders.qbs))
        for job_type in queue.handlers:

            def executor(parameters: EntrypointExecutorParameters) -> Executor:
                return Executor(parameters, queue, released)

            manager.entrypoint(job_type, on_failure="hold", executor_factory=executor)(_never_called)
        yield manager

    return manager


async def _never_called(job: QueuedJob) -> None:  # the executor runs the service's own handler instead
    raise NotImplementedError


def _on_signals(lifecycle: Lifecycle, shutdown: asyncio.Event, released: asyncio.Event, budget: float) -> None:
    loop = asyncio.get_running_loop()

    def stop(signum: int) -> None:
        if lifecycle.draining:
            return
        log.info("%s received: no new jobs; running ones have %gs", signal.Signals(signum).name, budget)
        lifecycle.begin_draining()
        shutdown.set()
        loop.call_later(budget, released.set)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)


async def _sample_backlog(queue: JobQueue, engine: AsyncEngine, interval: float) -> None:
    while True:
        with suppress(Exception):  # PostgreSQL away: the gauges keep their last values
            found = await backlog(engine)
            for state, value in (("queued", found.queued), ("running", found.picked), ("failed", found.failed)):
                queue.observed.depth.labels(state).set(value)
            queue.observed.oldest.set(found.oldest_seconds)
        await asyncio.sleep(interval)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
