"""The queue as the rest of the service sees it: job types, the enqueue in the caller's transaction, the backlog.

``JobQueue.enqueue(session, type, payload)`` writes the job on the session's own connection, inside its open
transaction: pgqueuer's INSERT goes to the asyncpg connection under SQLAlchemy's, so the job commits or rolls
back with the write. On the embedded SQLite the job waits in the session until it commits, then runs
in-process (``local.py``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from pgqueuer import AsyncpgDriver, Queries
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment, QueryQueueBuilder, QuerySchedulerBuilder
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ...checks import Check, Result
from ...metrics import Metrics
from ...observability import request_id_var
from .metrics import JobMetrics
from .settings import JobsSettings


@dataclass(frozen=True, slots=True)
class Job:
    """One run of a job, as its handler gets it."""

    id: int
    type: str
    payload: dict[str, Any]
    attempt: int  # 1 on the first run
    request_id: str | None = None  # the request that enqueued it, for the logs


Handler = Callable[[Job], Awaitable[None]]


class Holder(Protocol):
    """Where jobs wait for their session's commit when there is no queue table (``local.LocalRunner``)."""

    def hold(self, session: AsyncSession, job_type: str, body: bytes, headers: dict[str, str] | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: before attempt n+1, a wait drawn from [0, min(max, initial * 2**(n-1))]."""

    initial_seconds: float
    max_seconds: float
    rand: Callable[[float, float], float] = random.uniform

    def cap(self, attempt: int) -> float:
        return min(self.max_seconds, self.initial_seconds * 2.0 ** (attempt - 1))

    def wait(self, attempt: int) -> float:
        """The wait after ``attempt`` failed."""
        return float(self.rand(0.0, self.cap(attempt)))


class Builders:
    """pgqueuer's SQL builders, made once: each reads its settings from the environment when made."""

    def __init__(self) -> None:
        self.qbe = QueryBuilderEnvironment()
        self.qbq = QueryQueueBuilder()
        self.qbs = QuerySchedulerBuilder()

    def queries(self, connection: Any) -> Queries:
        return Queries(AsyncpgDriver(connection), qbe=self.qbe, qbq=self.qbq, qbs=self.qbs)


@dataclass
class JobQueue:
    """The job types of the service and the one way to enqueue them."""

    cfg: JobsSettings
    metrics: Metrics
    handlers: dict[str, Handler] = field(default_factory=dict)
    local: Holder | None = None  # on the embedded SQLite: runs the jobs in this process
    builders: Builders = field(default_factory=Builders)

    def __post_init__(self) -> None:
        self.observed = JobMetrics(self.metrics.registry)
        self.backoff = Backoff(self.cfg.retry_initial_seconds, self.cfg.retry_max_seconds)

    def register(self, job_type: str, handler: Handler) -> None:
        """Run ``handler`` for each job of ``job_type``; a part registers its types as its lifespan opens."""
        if job_type in self.handlers:
            raise ValueError(f"job type {job_type!r} is registered already")
        self.handlers[job_type] = handler

    async def enqueue(
        self, session: AsyncSession, job_type: str, payload: dict[str, Any], *, dedupe_key: str | None = None
    ) -> None:
        """Add a job in ``session``'s transaction: it exists once the session commits, and never if it rolls back.

        ``dedupe_key`` keeps one queued job per key: a second enqueue with the same key while the first waits
        raises pgqueuer's ``DuplicateJobError`` (and so rolls the caller's write back).
        """
        if job_type not in self.handlers:
            raise LookupError(f"no handler for job type {job_type!r}")
        body = orjson.dumps(payload)
        headers = {"request_id": request_id} if (request_id := request_id_var.get()) else None
        if self.local is not None:
            self.local.hold(session, job_type, body, headers)
            return
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection  # the asyncpg connection under it
        if driver is not None and not driver.is_in_transaction():
            # SQLAlchemy begins on the driver with the session's first statement: a job enqueued before any
            # would commit on its own, whatever the session does next.
            await connection.execute(text("SELECT 1"))
        queries = self.builders.queries(driver)
        await queries.enqueue(job_type, body, dedupe_key=dedupe_key, headers=headers)


# Counted over pgqueuer's table: the worker's gauges and the API's health check read the same numbers.
BACKLOG = text(
    """
    SELECT
        count(*) FILTER (WHERE status = 'queued') AS queued,
        count(*) FILTER (WHERE status = 'picked') AS picked,
        count(*) FILTER (WHERE status = 'failed') AS failed,
        coalesce(extract(epoch FROM now() - min(execute_after) FILTER (
            WHERE status = 'queued' AND execute_after <= now())), 0) AS oldest_seconds
    FROM pgqueuer
    """
)


@dataclass(frozen=True, slots=True)
class Backlog:
    queued: int
    picked: int
    failed: int
    oldest_seconds: float


async def backlog(engine: AsyncEngine) -> Backlog:
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        row = (await autocommit.execute(BACKLOG)).one()
    return Backlog(int(row.queued), int(row.picked), int(row.failed), float(row.oldest_seconds))


def backlog_check(engine: AsyncEngine, cfg: JobsSettings) -> Check:
    """The queue in ``/health/detailed``: the oldest ready job's wait, warning past ``JOBS_BACKLOG_WARN_SECONDS``.

    Never critical: a backlog is the workers' problem, and an API that turned unready over it would add an outage.
    """

    async def run() -> Result:
        found = await backlog(engine)
        late = found.oldest_seconds >= cfg.backlog_warn_seconds
        details = {"queued": found.queued, "running": found.picked, "failed": found.failed}
        output = f"the oldest ready job has waited {found.oldest_seconds:.0f}s" if late else None
        return Result("warn" if late else "pass", round(found.oldest_seconds, 1), "s", output, details=details)

    return Check("jobs:backlog", "component", False, run)
