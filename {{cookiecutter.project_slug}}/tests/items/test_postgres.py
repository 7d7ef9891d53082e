"""The example API end to end on real PostgreSQL."""

from __future__ import annotations

import asyncio

from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import client_for
from tests.items import UTC_TIMESTAMP


async def test_items_round_trip_on_postgres(services_settings: Settings) -> None:
    """POST stores an item in PostgreSQL, GET reads it back, the list pages through it."""
    async with client_for(services_settings) as client:
        created = [(await client.post("/api/v1/items", json={"name": f"item {i}"})).json() for i in range(5)]
        assert [item["id"] for item in created] == [1, 2, 3, 4, 5]
        assert all(UTC_TIMESTAMP.fullmatch(item["created_at"]) for item in created), created
        assert (await client.get("/api/v1/items/3")).json() == created[2]
        page = (await client.get("/api/v1/items", params={"limit": 2, "offset": 2})).json()
        assert [item["id"] for item in page["items"]] == [3, 4]


async def test_concurrent_writes_and_reads(services_settings: Settings) -> None:
    """Fifty concurrent creates and reads all succeed through the pool."""
    async with client_for(services_settings) as client:
        created = await asyncio.gather(*(client.post("/api/v1/items", json={"name": f"n{i}"}) for i in range(50)))
        assert {response.status_code for response in created} == {201}
        reads = await asyncio.gather(*(client.get(f"/api/v1/items/{r.json()['id']}") for r in created))
        assert {response.status_code for response in reads} == {200}
