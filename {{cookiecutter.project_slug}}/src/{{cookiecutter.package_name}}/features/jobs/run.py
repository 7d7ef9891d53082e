"""One attempt of one job, the same in the worker and in-process: its handler under the job's deadline.

The attempt's deadline (``JOBS_JOB_TIMEOUT_SECONDS``) is the guards' deadline too, as a request's is: a
dependency call inside the handler goes through its guard (breaker, bulkhead, retries) and never outlives the
attempt. Every log line of the attempt carries the request id that enqueued the job.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ...observability import request_id_var
from ...resilience import deadline
from .queue import Job, JobQueue

log = logging.getLogger(__name__)


class Released(Exception):
    """The worker is shutting down and its budget ran out: the job goes back to the queue, unfinished."""


async def attempt(queue: JobQueue, job: Job, released: asyncio.Event | None = None) -> None:
    """Run ``job``'s handler once; raise what it raised, TimeoutError past the deadline, Released at shutdown."""
    handler = queue.handlers[job.type]
    token = request_id_var.set(job.request_id)
    try:
        seconds = queue.cfg.job_timeout_seconds
        with deadline.within(seconds):
            async with asyncio.timeout(seconds):
                if released is None:
                    await handler(job)
                    return
                work = asyncio.ensure_future(handler(job))
                stop = asyncio.ensure_future(released.wait())
                try:
                    await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
                    if not work.done():  # released, or the deadline passed: the handler stops here
                        work.cancel()
                        await asyncio.gather(work, return_exceptions=True)
                if work.cancelled():
                    raise Released
                work.result()
    finally:
        request_id_var.reset(token)


def record(queue: JobQueue, job: Job, outcome: str, started: float, error: BaseException | None = None) -> None:
    """Count the attempt and log its end: the job's id, type and attempt, and the error when there is one."""
    elapsed = time.monotonic() - started
    queue.observed.ran(job.type, outcome, elapsed)
    fields = {"job_id": job.id, "job_type": job.type, "attempt": job.attempt, "outcome": outcome}
    token = request_id_var.set(job.request_id)
    try:
        if outcome == "failed":
            log.error("job failed for good", exc_info=error, extra=fields)
        elif outcome == "retried":
            log.warning("job failed, will retry", extra={**fields, "error": repr(error)})
        else:
            log.info("job %s", outcome, extra={**fields, "seconds": round(elapsed, 3)})
    finally:
        request_id_var.reset(token)
