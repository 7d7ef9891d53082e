"""Background jobs: rows in PostgreSQL, enqueued in the transaction of the write that needs them.

The queue is pgqueuer's (its tables, its ``FOR UPDATE SKIP LOCKED`` dequeue, its heartbeats). Chosen over
procrastinate because it speaks asyncpg, the service's own driver: a job is enqueued on the very connection
of the write, inside its transaction (``JobQueue.enqueue``), so a rolled-back write leaves no job and a
committed one exactly one. procrastinate's transactional defer needs psycopg 3, a second driver and a second
pool for the same database, and its stalled jobs need a periodic task; pgqueuer re-picks a job whose heartbeat
is older than the lease by itself. Its cost, measured on this service: 10 packages in the locks (typer, rich,
croniter, tabulate among them, none imported by the API), about 60 ms more to import the package (measured
with ``python -X importtime``), and nothing on the request path but the enqueue's one INSERT; ``make bench``
at the template root shows the create route with the enqueue against a bare insert.

Semantics: at least once. A job runs again when its worker dies before recording the outcome, so a handler
is idempotent (the example's ``UPDATE ... WHERE processed_at IS NULL``). A failure is retried with exponential
backoff and full jitter up to ``JOBS_MAX_ATTEMPTS``, then kept as ``failed`` with its error:
``python -m <package> jobs failed`` lists them, ``jobs retry ID`` queues one again. ``python -m <package>
worker`` runs them (``worker.py``); on the embedded SQLite the service runs them in-process (``local.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ...db import Database
from .. import Assembly, Command, Feature
from .commands import jobs_command, parse_jobs
from .local import LocalRunner
from .queue import Job, JobQueue, backlog_check
from .settings import JobsSettings
from .worker import run_worker

__all__ = ["Job", "JobQueue", "JobsSettings"]  # what the parts that define job types use


@asynccontextmanager
async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
    """Provide the ``JobQueue``; on SQLite, also run its jobs here, as there is no worker to run them."""
    settings = assembly.settings
    cfg = settings.feature(JobsSettings)
    queue = JobQueue(cfg, assembly.metrics)
    assembly.provide(JobQueue, queue)
    if not settings.db.is_sqlite:
        assembly.checks.add(backlog_check(assembly.get(Database).engine, cfg))
        yield
        return
    runner = LocalRunner(queue)
    queue.local = runner
    runner.start()
    try:
        yield
    finally:
        await runner.close()  # cancels its tasks: what still waits is lost, as local.py says


feature = Feature(
    "jobs",
    settings={"jobs": JobsSettings},
    commands=[
        Command("worker", "run background jobs until SIGTERM", run_worker),
        Command("jobs", "list failed jobs (jobs failed), queue one again (jobs retry ID)", jobs_command, parse_jobs),
    ],
    lifespan=lifespan,
)
