"""Real worker processes: a SIGKILLed worker's jobs run again after the lease, SIGTERM loses nothing, a job that
always fails is kept as failed after its attempts, and the jobs command lists and requeues it."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import asyncpg

from {{ cookiecutter.package_name }}.settings import Settings
from tests.jobs.conftest import FAST, ROOT, Worker, enqueue, until


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


async def count(connection: asyncpg.Connection, sql: str) -> int:
    return int(await connection.fetchval(sql))


async def test_a_killed_workers_jobs_run_elsewhere_after_the_lease(
    queue_db: asyncpg.Connection, start_worker: Callable[..., Worker]
) -> None:
    """Worker A is SIGKILLed while running four jobs; worker B runs all four once their lease (3 s) has run out."""
    first = start_worker()
    for key in range(4):
        await enqueue(queue_db, "tests.sleep", {"key": f"k{key}", "seconds": 2})

    async def running() -> bool:
        return await count(queue_db, "SELECT count(*) FROM pgqueuer WHERE status = 'picked'") == 4

    await until("worker A to pick the four jobs", running)
    first.signal(signal.SIGKILL)
    first.wait(10)
    killed_at = time.monotonic()
    second = start_worker()

    async def done() -> bool:
        return await count(queue_db, "SELECT count(*) FROM job_runs") == 4

    await until("worker B to finish them", done, within=45)
    assert time.monotonic() - killed_at >= float(FAST["JOBS_LEASE_SECONDS"]) - 0.5  # not before the lease ran out
    pids = {row["pid"] for row in await queue_db.fetch("SELECT pid FROM job_runs")}
    assert pids == {second.pid}

    async def recorded() -> bool:  # outcomes are written in batches, shortly after
        return await count(queue_db, "SELECT count(*) FROM pgqueuer") == 0

    await until("their outcomes recorded", recorded)


async def test_sigterm_finishes_short_jobs_releases_long_ones_and_exits_0(
    queue_db: asyncpg.Connection, start_worker: Callable[..., Worker]
) -> None:
    """On SIGTERM the worker takes no new job, finishes the ones that fit in its budget (2 s), puts the others
    back in the queue and exits 0 within the budget; another worker then runs those: none is lost."""
    worker = start_worker(JOBS_CONCURRENCY="4")  # busy with four: the fifth job stays queued
    for key, seconds in (("short-1", 0.5), ("short-2", 0.5), ("long-1", 30), ("long-2", 30)):
        await enqueue(queue_db, "tests.sleep", {"key": key, "seconds": seconds})

    async def running() -> bool:
        return await count(queue_db, "SELECT count(*) FROM pgqueuer WHERE status = 'picked'") == 4

    await until("the worker to pick all four", running)
    await enqueue(queue_db, "tests.sleep", {"key": "late", "seconds": 0})
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0, worker.output()
    elapsed = time.monotonic() - started
    assert elapsed < float(FAST["JOBS_SHUTDOWN_SECONDS"]) + 5, elapsed  # the budget, and closing
    assert elapsed >= float(FAST["JOBS_SHUTDOWN_SECONDS"]) - 0.2  # it did wait for the running jobs
    finished = {row["key"] for row in await queue_db.fetch("SELECT key FROM job_runs")}
    assert finished == {"short-1", "short-2"}
    left = await queue_db.fetch("SELECT status, payload FROM pgqueuer ORDER BY id")
    assert [row["status"] for row in left] == ["queued"] * 3  # the two released and the one never taken
    start_worker(JOBS_SHUTDOWN_SECONDS="60")
    # The released jobs need not take their 30 s this time.
    await queue_db.execute(
        "UPDATE pgqueuer SET payload = convert_to(replace(convert_from(payload, 'UTF8'), '30', '0'), 'UTF8')"
    )

    async def everything() -> bool:
        return await count(queue_db, "SELECT count(*) FROM job_runs") == 5

    await until("another worker to run the rest", everything)


async def test_a_job_that_always_fails_is_kept_failed_after_its_attempts(
    services_settings: Settings, queue_db: asyncpg.Connection, start_worker: Callable[..., Worker]
) -> None:
    """A job that always fails runs JOBS_MAX_ATTEMPTS (4) times, each wait within its backoff's cap (0.2 s, then
    doubling, at most 1 s), then stays failed; `jobs failed` shows it with its error, `jobs retry ID` requeues it."""
    start_worker()
    job_id = await enqueue(queue_db, "tests.fail", {"key": "doomed"})

    async def failed() -> bool:
        return bool(await queue_db.fetchval("SELECT status FROM pgqueuer WHERE id = $1", job_id) == "failed")

    await until("the job to fail for good", failed)
    runs = await queue_db.fetch("SELECT attempt, finished_at FROM job_runs ORDER BY id")
    assert [row["attempt"] for row in runs] == [1, 2, 3, 4]
    waits = [(b["finished_at"] - a["finished_at"]).total_seconds() for a, b in itertools.pairwise(runs)]
    caps = [0.2, 0.4, 0.8]
    slack = 1.0  # the worker's poll and the machine's load on top of the drawn wait
    assert all(0 <= wait <= cap + slack for wait, cap in zip(waits, caps, strict=True)), waits
    env = {"DATABASE_URL": services_settings.db.url.get_secret_value(), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}", "jobs"]
    listed = await asyncio.to_thread(run, [*command, "failed"], env)
    line = next(line for line in listed.stdout.splitlines() if line.split()[0] == str(job_id))
    assert "tests.fail" in line and "Flaky: attempt 4 failed" in line, listed.stdout
    retried = await asyncio.to_thread(run, [*command, "retry", str(job_id)], env)
    assert retried.returncode == 0 and f"job {job_id} queued again" in retried.stdout, retried.stderr
    again = await asyncio.to_thread(run, [*command, "retry", "999999"], env)
    assert again.returncode == 1 and again.stderr.strip() == "jobs retry: job 999999 cannot be retried: no such job"

    async def rerun() -> bool:
        return await count(queue_db, "SELECT count(*) FROM job_runs") > 4

    await until("the requeued job to run again", rerun)
