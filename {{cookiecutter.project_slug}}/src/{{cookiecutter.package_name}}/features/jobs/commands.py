"""``python -m <package> jobs failed`` lists the jobs kept as failed, ``jobs retry ID`` queues one again."""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from ...settings import Settings
from .queue import Builders


def parse_jobs(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    failed = actions.add_parser("failed", help="list the jobs that failed for good, newest first")
    failed.add_argument("--limit", type=int, default=50)
    retry = actions.add_parser("retry", help="queue a failed job again, its attempts counted from zero")
    retry.add_argument("id", type=int)


def jobs_command(settings: Settings, args: argparse.Namespace) -> int:
    if settings.db.is_sqlite:
        print("jobs: the embedded SQLite keeps no queue (its jobs run in-process); set DATABASE_URL", file=sys.stderr)
        return 2
    from .worker import asyncpg_dsn

    return asyncio.run(_run(asyncpg_dsn(settings.db), settings.db.connect_timeout_seconds, args))


async def _run(dsn: str, connect_seconds: float, args: argparse.Namespace) -> int:
    connection = await asyncpg.connect(dsn, timeout=connect_seconds)
    try:
        queries = Builders().queries(connection)
        if args.action == "retry":
            found = await connection.fetchval("SELECT status FROM pgqueuer WHERE id = $1", args.id)
            if found != "failed":
                state = "no such job" if found is None else f"it is {found}, not failed"
                print(f"jobs retry: job {args.id} cannot be retried: {state}", file=sys.stderr)
                return 1
            await queries.requeue_jobs([args.id])
            print(f"job {args.id} queued again")
            return 0
        failed = await queries.list_failed_jobs(limit=args.limit)
        errors = await _last_errors(connection, [job.id for job in failed])
        print(f"{'id':>8}  {'type':<24}  {'attempts':>8}  {'failed at':<25}  error")
        for job in failed:
            updated = job.updated.isoformat(timespec="seconds")
            print(f"{job.id:>8}  {job.entrypoint:<24}  {job.attempts + 1:>8}  {updated:<25}  {errors.get(job.id, '')}")
        return 0
    finally:
        await connection.close()


async def _last_errors(connection: asyncpg.Connection, ids: list[int]) -> dict[int, str]:
    """Each job's last recorded error, from pgqueuer's log, on one line."""
    rows = await connection.fetch(
        """
        SELECT DISTINCT ON (job_id)
            job_id, traceback->>'exception_type' AS kind, traceback->>'exception_message' AS message
        FROM pgqueuer_log WHERE job_id = ANY($1::bigint[]) AND traceback IS NOT NULL
        ORDER BY job_id, id DESC
        """,
        ids,
    )
    return {row["job_id"]: f"{row['kind']}: {row['message']}"[:200] for row in rows}
