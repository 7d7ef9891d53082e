"""The items' processing as a background job: enqueued with the insert, run by the worker after the commit.

A part of its own because it needs both the example API and the jobs part: it registers the ``items.process``
job type and sets ``ItemProcessing.defer`` to enqueue it, with the item's id as the dedupe key (one job waiting
per item however often it is deferred). The job stamps ``processed_at`` through the database's guard,
idempotently, and drops the item's cached copy so that the next read shows the stamp.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from ..cache import Cache
from ..db import Database
from ..items.processing import ItemProcessing, process
from ..items.router import cache_key
from . import Assembly, Feature
from .jobs import Job, JobQueue

JOB_TYPE = "items.process"


@asynccontextmanager
async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
    queue = assembly.get(JobQueue)
    database = assembly.get(Database)

    async def defer(session: AsyncSession, item_id: int) -> None:
        await queue.enqueue(session, JOB_TYPE, {"item_id": item_id}, dedupe_key=f"{JOB_TYPE}:{item_id}")

    async def run(job: Job) -> None:
        item_id = int(job.payload["item_id"])

        async def stamp(session: AsyncSession) -> None:
            await process(session, item_id)
            await session.commit()

        await database.run(stamp, idempotent=True)  # a second run changes nothing, so the guard may retry it
        await assembly.get(Cache).delete(cache_key(item_id))  # the core's cache, there once every part has opened

    queue.register(JOB_TYPE, run)
    assembly.get(ItemProcessing).defer = defer
    yield


feature = Feature("item_jobs", lifespan=lifespan, after=("items", "jobs"))
