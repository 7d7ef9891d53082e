"""On the embedded SQLite, the service runs its jobs itself: a few tasks beside the server, in memory.

SQLite has no queue for pgqueuer, and the embedded mode is one process on one machine, so a job waits in its
session until the session commits (dropped with a rollback), then joins an in-process queue. Retries follow the
same backoff as the worker's. A job still waiting when the server stops is lost: fine for a demo, which is what
this mode is; PostgreSQL keeps them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import replace

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .queue import Job, JobQueue
from .run import attempt, record

log = logging.getLogger(__name__)
HELD = "jobs.held"  # the session.info key of the jobs waiting for its commit


class LocalRunner:
    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.ready: asyncio.Queue[Job] = asyncio.Queue()
        self.failed: list[Job] = []
        self.ids = itertools.count(1)
        self.tasks: list[asyncio.Task[None]] = []

    def hold(self, session: AsyncSession, job_type: str, body: bytes, headers: dict[str, str] | None) -> None:
        sync = session.sync_session
        held: list[Job] | None = sync.info.get(HELD)
        if held is None:
            held = sync.info[HELD] = []
            event.listen(sync, "after_commit", self._committed)
            event.listen(sync, "after_rollback", self._rolled_back)
        request_id = (headers or {}).get("request_id")
        held.append(Job(next(self.ids), job_type, orjson.loads(body), 1, request_id))

    def _committed(self, session: Session) -> None:
        for job in session.info.pop(HELD, []):
            self.ready.put_nowait(job)

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(HELD, None)

    def start(self) -> None:
        for number in range(self.queue.cfg.local_workers):
            self.tasks.append(asyncio.create_task(self._work(), name=f"jobs-in-process-{number}"))

    async def _work(self) -> None:
        while True:
            job = await self.ready.get()
            started = time.monotonic()
            try:
                await attempt(self.queue, job)
            except Exception as exc:
                if job.attempt >= self.queue.cfg.max_attempts:
                    record(self.queue, job, "failed", started, exc)
                    self.failed.append(job)
                    continue
                record(self.queue, job, "retried", started, exc)
                again = replace(job, attempt=job.attempt + 1)
                asyncio.get_running_loop().call_later(
                    self.queue.backoff.wait(job.attempt), self.ready.put_nowait, again
                )
            else:
                record(self.queue, job, "succeeded", started)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
