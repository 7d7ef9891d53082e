"""Real worker processes against the real PostgreSQL, and the tests' own job types (``part.py``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from {{ cookiecutter.package_name }}.features.jobs.worker import asyncpg_dsn
from {{ cookiecutter.package_name }}.settings import Settings
from tests.jobs.part import RUNS
from tests.servers_local import free_port

ROOT = Path(__file__).resolve().parents[2]
# Short enough for tests to see a lease run out and a backoff's waits, long enough for a loaded machine.
FAST = {
    "JOBS_LEASE_SECONDS": "3",
    "JOBS_POLL_SECONDS": "0.5",
    "JOBS_RESTART_SECONDS": "0.5",
    "JOBS_SHUTDOWN_SECONDS": "2",
    "JOBS_RETRY_INITIAL_SECONDS": "0.2",
    "JOBS_RETRY_MAX_SECONDS": "1",
    "JOBS_MAX_ATTEMPTS": "4",
    "JOBS_METRICS_SECONDS": "0.5",
}


class Worker:
    """One ``worker`` process with the tests' job types, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.jobs.part"],
                cwd=ROOT,
                env={**env, "JOBS_PORT": str(self.port), "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
async def queue_db(services_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the emptied database, with the tests' ``job_runs`` table."""
    connection = await asyncpg.connect(asyncpg_dsn(services_settings.db))
    await connection.execute(RUNS)
    await connection.execute("TRUNCATE job_runs RESTART IDENTITY")
    yield connection
    await connection.close()


@pytest.fixture
def start_worker(services_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []
    env = {**os.environ, **FAST, "DATABASE_URL": services_settings.db.url.get_secret_value()}

    def start(**overrides: str) -> Worker:
        worker = Worker({**env, **overrides}, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


async def enqueue(connection: asyncpg.Connection, job_type: str, payload: dict[str, Any]) -> int:
    """A job enqueued outside any write, as pgqueuer's own producer does."""
    from pgqueuer import Queries

    (job_id,) = await Queries.from_asyncpg_connection(connection).enqueue(job_type, orjson.dumps(payload))
    return int(job_id)


async def until(what: str, check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
