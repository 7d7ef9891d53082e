"""A running worker rides out PostgreSQL restarted and paused under it, and carries on without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from {{ cookiecutter.package_name }}.features.jobs.worker import asyncpg_dsn
from {{ cookiecutter.package_name }}.settings import Settings
from tests.jobs.conftest import Worker, enqueue, until
from tests.servers import ServerHandle


async def test_worker_rides_out_a_restart_and_a_pause(
    services_settings: Settings,
    queue_db: asyncpg.Connection,
    postgres: ServerHandle,
    start_worker: Callable[..., Worker],
) -> None:
    """Jobs enqueued before, between and after PostgreSQL was restarted and paused (3 s each) all run, in the same
    worker process."""
    worker = start_worker()
    dsn = asyncpg_dsn(services_settings.db)
    await enqueue(queue_db, "tests.sleep", {"key": "before"})

    async def runs(expected: int) -> bool:
        connection = await asyncpg.connect(dsn)
        try:
            return int(await connection.fetchval("SELECT count(*) FROM job_runs")) == expected
        finally:
            await connection.close()

    await until("the first job", lambda: runs(1))
    await queue_db.close()
    await asyncio.to_thread(postgres.stop)
    await asyncio.sleep(3)
    await asyncio.to_thread(postgres.start)
    connection = await asyncpg.connect(dsn)
    await enqueue(connection, "tests.sleep", {"key": "after the restart"})
    try:
        await until("a job after the restart", lambda: runs(2), within=30)
    except AssertionError:
        raise AssertionError(worker.output()[-6000:]) from None
    await asyncio.to_thread(postgres.pause)
    await asyncio.sleep(3)
    await asyncio.to_thread(postgres.resume)
    await enqueue(connection, "tests.sleep", {"key": "after the pause"})
    await until("a job after the pause", lambda: runs(3), within=60)
    await connection.close()
    assert worker.process.poll() is None, worker.output()
