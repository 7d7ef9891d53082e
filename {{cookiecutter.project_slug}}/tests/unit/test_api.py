"""The HTTP API end to end on the embedded SQLite database and in-process cache."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.conftest import SettingsFactory, client_for

PROBLEM = "application/problem+json"


async def test_items_round_trip(make_settings: SettingsFactory) -> None:
    """POST creates an item with an id; GET returns it; the list shows it."""
    async with client_for(make_settings()) as client:
        created = await client.post("/api/v1/items", json={"name": "bolt", "description": "M6"})
        assert created.status_code == 201
        item = created.json()
        assert item["id"] >= 1 and item["name"] == "bolt"
        fetched = await client.get(f"/api/v1/items/{item['id']}")
        assert fetched.status_code == 200
        assert fetched.json() == item
        page = await client.get("/api/v1/items", params={"limit": 10})
        assert [entry["id"] for entry in page.json()["items"]] == [item["id"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        pytest.param("GET", "/api/v1/items/999", None, 404, id="missing-item"),
        pytest.param("GET", "/nowhere", None, 404, id="unknown-route"),
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
    """Every client error answers its 4xx as RFC 9457 problem+json, never a 500."""
    async with client_for(make_settings()) as client:
        response = await client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status and problem["title"]


async def test_a_crash_is_a_500_without_the_exception_text(make_settings: SettingsFactory) -> None:
    """An unexpected exception answers a generic problem+json 500 that keeps the request id."""
    from {{ cookiecutter.package_name }}.app import create_app
    from tests.conftest import serve

    app = create_app(make_settings())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    async with serve(app) as client:
        response = await client.get("/boom", headers={"x-request-id": "req-500"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "secret internals" not in response.text
    assert response.headers["x-request-id"] == "req-500"


async def test_request_id_is_echoed_and_logged(
    make_settings: SettingsFactory, captured_logs: Callable[[], list[str]]
) -> None:
    """A well-formed X-Request-ID is echoed and appears in the request's access log line."""
    async with client_for(make_settings()) as client:
        response = await client.get("/api/v1/items/1", headers={"x-request-id": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"
        hostile = await client.get("/api/v1/items/1", headers={"x-request-id": "bad id\twith spaces"})
        assert hostile.headers["x-request-id"] != "bad id\twith spaces"
    records = [json.loads(line) for line in captured_logs()]
    access = [r for r in records if r.get("message") == "request" and r.get("request_id") == "abc-123"]
    assert len(access) == 1
    assert access[0]["route"] == "/api/v1/items/{item_id}"
    assert access[0]["status"] == 404


async def test_probes_are_neither_logged_nor_counted(
    make_settings: SettingsFactory, captured_logs: Callable[[], list[str]]
) -> None:
    """Probe requests leave no access log line and no request metric."""
    async with client_for(make_settings()) as client:
        captured_logs()
        for path in ("/health/live", "/health/ready", "/health/startup", "/health", "/health/detailed"):
            assert (await client.get(path)).status_code == 200
        logged = captured_logs()
        metrics = (await client.get("/metrics")).text
    assert not [line for line in logged if '"message":"request"' in line]
    assert 'handler="/health' not in metrics


async def test_metrics_count_the_items_route_by_template(make_settings: SettingsFactory) -> None:
    """/metrics counts requests under the route template, not the raw path, and leaves probes out."""
    async with client_for(make_settings()) as client:
        for item_id in (1, 2, 3):
            await client.get(f"/api/v1/items/{item_id}")
        await client.get("/health/live")
        body = (await client.get("/metrics")).text
    assert 'http_requests_total{handler="/api/v1/items/{item_id}",method="GET",status="404"} 3.0' in body
    assert 'handler="/health/live"' not in body


async def test_cache_aside_serves_repeated_reads(make_settings: SettingsFactory) -> None:
    """The first read of an item fills the cache, the second is a hit."""
    async with client_for(make_settings()) as client:
        item = (await client.post("/api/v1/items", json={"name": "nut"})).json()
        await client.get(f"/api/v1/items/{item['id']}")
        await client.get(f"/api/v1/items/{item['id']}")
        body = (await client.get("/metrics")).text
    assert 'cache_requests_total{result="miss"} 1.0' in body
    assert 'cache_requests_total{result="hit"} 1.0' in body


async def test_deadline_answers_504(make_settings: SettingsFactory) -> None:
    """A request that outlives its deadline (shortened by X-Request-Timeout) answers 504 problem+json."""
    import asyncio

    from {{ cookiecutter.package_name }}.app import create_app
    from tests.conftest import serve

    app = create_app(make_settings())

    @app.get("/slow")
    async def slow() -> None:
        await asyncio.sleep(5)

    async with serve(app) as client:
        response = await client.get("/slow", headers={"x-request-timeout": "0.05"})
    assert response.status_code == 504
    assert response.headers["content-type"] == PROBLEM
