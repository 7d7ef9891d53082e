"""The example API's create enqueues its item's processing, and real workers process every item."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import orjson

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import serve
from tests.jobs.conftest import Worker, until


async def test_each_create_enqueues_one_job(services_settings: Settings, queue_db: asyncpg.Connection) -> None:
    """Each POST /api/v1/items commits its item with one items.process job, which carries the request's id."""
    async with serve(create_app(services_settings)) as client:
        created = [await client.post("/api/v1/items", json={"name": f"n{i}"}) for i in range(3)]
    assert {response.status_code for response in created} == {201}
    rows = await queue_db.fetch("SELECT entrypoint, payload, headers, dedupe_key FROM pgqueuer ORDER BY id")
    assert [(row["entrypoint"], row["payload"]) for row in rows] == [
        ("items.process", orjson.dumps({"item_id": response.json()["id"]})) for response in created
    ]
    assert [row["dedupe_key"] for row in rows] == [f"items.process:{r.json()['id']}" for r in created]
    request_ids = [response.headers["x-request-id"] for response in created]
    assert [orjson.loads(row["headers"]) for row in rows] == [{"request_id": rid} for rid in request_ids]


async def test_a_thousand_creates_two_workers_every_item_processed(
    services_settings: Settings, queue_db: asyncpg.Connection, start_worker: Callable[..., Worker]
) -> None:
    """1,000 items created while two workers run: each item's job succeeds once, and a read shows processed_at."""
    workers = [start_worker(), start_worker()]
    async with serve(create_app(services_settings)) as client:
        for start in range(0, 1000, 50):
            batch = [client.post("/api/v1/items", json={"name": f"n{i}"}) for i in range(start, start + 50)]
            assert {response.status_code for response in await asyncio.gather(*batch)} == {201}

        async def all_processed() -> bool:
            return bool(await queue_db.fetchval("SELECT count(*) FROM items WHERE processed_at IS NULL") == 0)

        await until("every item processed", all_processed, within=120)
        read = (await client.get("/api/v1/items/1000")).json()
        assert read["processed_at"] is not None

    async def recorded() -> bool:  # every job done, none left or failed; outcomes are written in batches
        return bool(await queue_db.fetchval("SELECT count(*) FROM pgqueuer") == 0)

    await until("every outcome recorded", recorded)
    done = await queue_db.fetch(
        "SELECT count(*) AS n, count(DISTINCT job_id) AS jobs FROM pgqueuer_log WHERE status = 'successful'"
    )
    assert (done[0]["n"], done[0]["jobs"]) == (1000, 1000)
    assert all(worker.process.poll() is None for worker in workers)
