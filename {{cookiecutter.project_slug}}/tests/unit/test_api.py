"""The HTTP surface (errors, request ids, metrics, deadlines) on the embedded SQLite database and in-process cache."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable

import pytest
from starlette.types import Scope

from tests.conftest import MANAGEMENT, SettingsFactory, client_for, problem

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        pytest.param("GET", "/nowhere", None, 404, id="unknown-route"),
        pytest.param("GET", "/test/cache/missing", None, 404, id="not-found"),
        pytest.param("DELETE", "/test/query", None, 405, id="wrong-method"),
        pytest.param("GET", "/test/sleep?seconds=soon", None, 422, id="query-not-a-number"),
        pytest.param("GET", "/test/sleep", None, 422, id="query-missing"),
    ],
)
async def test_bad_requests_get_problem_json(
    make_settings: SettingsFactory, method: str, path: str, body: bytes | None, status: int
) -> None:
    """Every client error answers its 4xx as RFC 9457 problem+json, never a 500."""
    answer = await problem(make_settings(), method, path, body, status)
    assert answer["status"] == status and answer["title"]


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


def test_each_500_reaches_every_error_hook_even_after_one_failed(caplog: pytest.LogCaptureFixture) -> None:
    """An exception answered 500 is logged and handed to each error hook in turn; a hook that fails is logged."""
    from {{ cookiecutter.package_name }}.observability import RequestHooks

    seen: list[tuple[BaseException, str]] = []

    def failing(exc: BaseException, scope: Scope) -> None:
        raise RuntimeError("the hook broke")

    hooks = RequestHooks()
    hooks.error_hooks += [failing, lambda exc, scope: seen.append((exc, scope["path"]))]
    error = ValueError("a bug")
    hooks.unhandled(error, {"path": "/boom"})
    assert seen == [(error, "/boom")]
    assert [record.getMessage() for record in caplog.records] == ["unhandled error", "an error hook failed"]
    assert caplog.records[0].exc_info is not None and caplog.records[0].exc_info[1] is error


async def test_request_id_is_echoed_and_logged(
    make_settings: SettingsFactory, captured_logs: Callable[[], list[str]]
) -> None:
    """A well-formed X-Request-ID is echoed and appears in the request's access log line."""
    async with client_for(make_settings()) as client:
        response = await client.get("/test/cache/1", headers={"x-request-id": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"
        hostile = await client.get("/test/cache/1", headers={"x-request-id": "bad id\twith spaces"})
        assert hostile.headers["x-request-id"] != "bad id\twith spaces"
        fresh = {(await client.get("/test/cache/1")).headers["x-request-id"] for _ in range(3)}
    assert len(fresh) == 3 and all(re.fullmatch("[0-9a-f]{32}", request_id) for request_id in fresh)
    records = [json.loads(line) for line in captured_logs()]
    access = [r for r in records if r.get("message") == "request" and r.get("request_id") == "abc-123"]
    assert len(access) == 1
    assert access[0]["route"] == "/test/cache/{key}"
    assert access[0]["status"] == 404


def test_forked_workers_draw_their_own_request_ids() -> None:
    """gunicorn's workers are forks of one process: each draws its own id prefix, so no two hand out one id."""
    script = (
        "import os\n"
        "from {{ cookiecutter.package_name }}.observability import new_request_id\n"
        "parent = new_request_id(None)\n"
        "read, write = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.write(write, new_request_id(None).encode())\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "print(parent, os.read(read, 64).decode())\n"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    parent, child = output.split()
    assert parent[:16] != child[:16]


async def test_probes_are_neither_logged_nor_counted(
    make_settings: SettingsFactory, captured_logs: Callable[[], list[str]]
) -> None:
    """Probe requests leave no access log line and no request metric."""
    async with client_for(make_settings()) as client:
        captured_logs()
        for path in ("/health/live", "/health/ready", "/health/startup", "/health"):
            assert (await client.get(path)).status_code == 200
        logged = captured_logs()
        metrics = (await client.get(f"{MANAGEMENT}/metrics")).text
    assert not [line for line in logged if '"message":"request"' in line]
    assert 'handler="/health' not in metrics


async def test_metrics_count_requests_by_route_template(make_settings: SettingsFactory) -> None:
    """/metrics counts requests under the route template, not the raw path, and leaves probes out."""
    async with client_for(make_settings()) as client:
        for key in ("a", "b", "c"):
            await client.get(f"/test/cache/{key}")
        await client.get("/health/live")
        body = (await client.get(f"{MANAGEMENT}/metrics")).text
    assert 'http_requests_total{handler="/test/cache/{key}",method="GET",status="404"} 3.0' in body
    assert 'handler="/health/live"' not in body


async def test_the_in_process_cache_serves_what_was_stored(make_settings: SettingsFactory) -> None:
    """A stored value is read back from the cache (a hit); an unknown key is a miss."""
    async with client_for(make_settings()) as client:
        assert (await client.put("/test/cache/k", content=b"v")).status_code == 204
        assert (await client.get("/test/cache/k")).content == b"v"
        assert (await client.get("/test/cache/other")).status_code == 404
        body = (await client.get(f"{MANAGEMENT}/metrics")).text
    assert 'cache_requests_total{result="hit"} 1.0' in body
    assert 'cache_requests_total{result="miss"} 1.0' in body


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


async def test_requests_in_progress_are_sampled(make_settings: SettingsFactory) -> None:
    """http_requests_inprogress shows the requests being served, within one sampling interval (0.5 s)."""
    import asyncio

    from {{ cookiecutter.package_name }}.app import create_app
    from tests.conftest import serve

    app = create_app(make_settings())
    release = asyncio.Event()

    @app.get("/held")
    async def held() -> None:
        await release.wait()

    async with serve(app) as client:
        requests = [asyncio.create_task(client.get("/held")) for _ in range(3)]
        await asyncio.sleep(0.7)
        during = (await client.get(f"{MANAGEMENT}/metrics")).text
        release.set()
        await asyncio.gather(*requests)
        await asyncio.sleep(0.7)
        after = (await client.get(f"{MANAGEMENT}/metrics")).text
    assert "http_requests_inprogress 3.0" in during
    assert "http_requests_inprogress 0.0" in after
