"""Job types for the tests, plugged into a real worker as a part: each run is a row in ``job_runs``.

``tests.sleep`` sleeps ``payload["seconds"]`` then records its run; ``tests.fail`` records its run and raises.
``python -m tests.jobs.part`` is the worker with these types added, as ``python -m <package> worker`` runs it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }} import features
from {{ cookiecutter.package_name }}.db import Database
from {{ cookiecutter.package_name }}.features import Assembly, Feature
from {{ cookiecutter.package_name }}.features.jobs import Job, JobQueue
from {{ cookiecutter.package_name }}.features.jobs.worker import serve

RUNS = """
CREATE TABLE IF NOT EXISTS job_runs (
    id bigserial PRIMARY KEY, job_id bigint, key text, attempt int, pid int, finished_at timestamptz DEFAULT now()
)
"""


class Flaky(Exception):
    """What ``tests.fail`` raises, every time."""


@asynccontextmanager
async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
    queue, database = assembly.get(JobQueue), assembly.get(Database)

    async def note(job: Job) -> None:
        async def insert(session: AsyncSession) -> None:
            values = {"job": job.id, "key": job.payload.get("key"), "attempt": job.attempt, "pid": os.getpid()}
            statement = "INSERT INTO job_runs (job_id, key, attempt, pid) VALUES (:job, :key, :attempt, :pid)"
            await session.execute(text(statement), values)
            await session.commit()

        await database.run(insert)

    async def sleep(job: Job) -> None:
        await asyncio.sleep(float(job.payload.get("seconds", 0)))
        await note(job)

    async def fail(job: Job) -> None:
        await note(job)
        raise Flaky(f"attempt {job.attempt} failed")

    queue.register("tests.sleep", sleep)
    queue.register("tests.fail", fail)
    yield


feature = Feature("test_jobs", lifespan=lifespan, after=("jobs",))


if __name__ == "__main__":
    sys.exit(asyncio.run(serve(features.load_settings(), extra=[feature])))
