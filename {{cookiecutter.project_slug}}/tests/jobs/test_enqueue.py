"""A job is enqueued in the transaction of the write that needs it, on the write's own connection."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.db import create_engine
from {{ cookiecutter.package_name }}.features.jobs import JobQueue, JobsSettings
from {{ cookiecutter.package_name }}.metrics import Metrics
from {{ cookiecutter.package_name }}.settings import Settings

JOBS = "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'tests.sleep'"


def queue_for(settings: Settings) -> JobQueue:
    queue = JobQueue(settings.feature(JobsSettings), Metrics())

    async def nothing(job: object) -> None: ...

    queue.register("tests.sleep", nothing)
    return queue


async def test_rollback_leaves_no_job_and_commit_exactly_one(
    services_settings: Settings, queue_db: asyncpg.Connection
) -> None:
    """The job is written on the session's connection inside its transaction: the session sees it before the
    commit while another connection does not; a rollback leaves none, a commit exactly one."""
    queue = queue_for(services_settings)
    engine = create_engine(services_settings.db)
    try:
        async with AsyncSession(engine) as session:
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
            await queue.enqueue(session, "tests.sleep", {"key": "rolled back"})
            assert await session.scalar(text(JOBS)) == 1  # the same transaction sees it
            assert await session.scalar(text("SELECT pg_backend_pid()")) == pid  # on the same connection
            assert await queue_db.fetchval(JOBS) == 0  # nobody else does yet
            await session.rollback()
        assert await queue_db.fetchval(JOBS) == 0
        async with AsyncSession(engine) as session:
            await queue.enqueue(session, "tests.sleep", {"key": "committed"})
            assert await queue_db.fetchval(JOBS) == 0
            await session.commit()
        assert await queue_db.fetch("SELECT payload FROM pgqueuer") == [(b'{"key":"committed"}',)]
    finally:
        await engine.dispose()


async def test_a_failed_create_enqueues_nothing(services_settings: Settings, queue_db: asyncpg.Connection) -> None:
    """A create whose transaction fails after the enqueue leaves neither the item nor its job."""
    queue = queue_for(services_settings)
    engine = create_engine(services_settings.db)
    try:
        async with AsyncSession(engine) as session:
            await queue.enqueue(session, "tests.sleep", {"key": "doomed"})
            with pytest.raises(Exception, match="division by zero"):
                await session.execute(text("SELECT 1 / 0"))
        assert await queue_db.fetchval(JOBS) == 0
    finally:
        await engine.dispose()


async def test_a_job_type_nobody_runs_is_refused(services_settings: Settings) -> None:
    """Enqueueing a type with no handler is a bug, caught before anything is written."""
    queue = queue_for(services_settings)
    engine = create_engine(services_settings.db)
    try:
        async with AsyncSession(engine) as session:
            with pytest.raises(LookupError, match=r"tests\.typo"):
                await queue.enqueue(session, "tests.typo", {})
    finally:
        await engine.dispose()
