"""The example API end to end on the embedded SQLite database and in-process cache."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import MANAGEMENT, SettingsFactory, client_for, problem
from tests.items import UTC_TIMESTAMP


async def test_items_round_trip(make_settings: SettingsFactory) -> None:
    """POST creates an item with an id; GET returns it; the list shows it."""
    async with client_for(make_settings()) as client:
        created = await client.post("/api/v1/items", json={"name": "bolt", "description": "M6"})
        assert created.status_code == 201
        item = created.json()
        assert item["id"] >= 1 and item["name"] == "bolt"
        assert UTC_TIMESTAMP.fullmatch(item["created_at"]), item["created_at"]
        fetched = await client.get(f"/api/v1/items/{item['id']}")
        assert fetched.status_code == 200
        assert fetched.json() | {"processed_at": None} == item | {"processed_at": None}  # it may be processed by now
        page = await client.get("/api/v1/items", params={"limit": 10})
        assert [entry["id"] for entry in page.json()["items"]] == [item["id"]]


async def test_a_created_item_gets_processed(make_settings: SettingsFactory) -> None:
    """A created item's processed_at is filled soon after, and a read shows it (its cached copy dropped)."""
    async with client_for(make_settings()) as client:
        item = (await client.post("/api/v1/items", json={"name": "nut"})).json()
        read = await client.get(f"/api/v1/items/{item['id']}")  # caches what it finds, processed or not
        for _ in range(100):
            if read.json()["processed_at"] is not None:
                break
            await asyncio.sleep(0.05)
            read = await client.get(f"/api/v1/items/{item['id']}")
        assert UTC_TIMESTAMP.fullmatch(read.json()["processed_at"] or ""), read.json()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        pytest.param("GET", "/api/v1/items/999", None, 404, id="missing-item"),
        pytest.param("DELETE", "/api/v1/items", None, 405, id="wrong-method"),
        pytest.param("GET", "/api/v1/items/abc", None, 422, id="id-not-int"),
        pytest.param("GET", "/api/v1/items/99999999999", None, 422, id="id-too-large"),
        pytest.param("GET", "/api/v1/items?limit=1000", None, 422, id="limit-too-large"),
        pytest.param("POST", "/api/v1/items", b"{not json", 422, id="malformed-json"),
        pytest.param("POST", "/api/v1/items", b'{"name": 5}', 422, id="wrong-type"),
        pytest.param("POST", "/api/v1/items", b'{"name": ""}', 422, id="empty-name"),
        pytest.param("POST", "/api/v1/items", json.dumps({"name": "x" * 201}).encode(), 422, id="name-too-long"),
        pytest.param("POST", "/api/v1/items", b'{"name": "a", "extra": 1}', 422, id="unknown-field"),
        pytest.param("POST", "/api/v1/items", b'{"name": "a\\u0000b"}', 422, id="nul-character"),
        pytest.param("POST", "/api/v1/items", b'{"name": "\\ud800"}', 422, id="lone-surrogate"),
        pytest.param("POST", "/api/v1/items", b'["name"]', 422, id="not-an-object"),
    ],
)
async def test_bad_requests_get_problem_json(
    make_settings: SettingsFactory, method: str, path: str, body: bytes | None, status: int
) -> None:
    """Every client error of the items API answers its 4xx as RFC 9457 problem+json, never a 500."""
    assert (await problem(make_settings(), method, path, body, status))["status"] == status


async def test_cache_aside_serves_repeated_reads(make_settings: SettingsFactory) -> None:
    """The first read of an item fills the cache, the second is a hit."""
    async with client_for(make_settings()) as client:
        item = (await client.post("/api/v1/items", json={"name": "nut"})).json()
        await client.get(f"/api/v1/items/{item['id']}")
        await client.get(f"/api/v1/items/{item['id']}")
        body = (await client.get(f"{MANAGEMENT}/metrics")).text
    assert 'cache_requests_total{result="miss"} 1.0' in body
    assert 'cache_requests_total{result="hit"} 1.0' in body
