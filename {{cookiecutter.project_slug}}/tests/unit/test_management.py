"""The management port: /metrics, /admin and /health/detailed answer there and nowhere else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import MANAGEMENT, SettingsFactory, client_for, refusal
from tests.failures.conftest import free_port

ROUTES = ("/metrics", "/admin/breakers", "/health/detailed")
ADMIN = {"authorization": "Bearer admin-token"}


async def test_management_routes_are_not_found_on_the_api_port(make_settings: SettingsFactory) -> None:
    """On the API port /metrics, /admin/breakers and /health/detailed are 404 problem+json, as if they did not
    exist (not 401), with ADMIN_TOKEN set and the bearer token given."""
    async with client_for(make_settings(ADMIN_TOKEN="admin-token")) as client:
        answers = {path: await client.get(path, headers=ADMIN) for path in ROUTES}
    assert {path: response.status_code for path, response in answers.items()} == dict.fromkeys(ROUTES, 404)
    assert {response.headers["content-type"] for response in answers.values()} == {"application/problem+json"}


async def test_management_routes_answer_on_the_management_port(make_settings: SettingsFactory) -> None:
    """On the management port the same three routes answer as before the split: metrics, breakers, health."""
    async with client_for(make_settings(ADMIN_TOKEN="admin-token")) as client:
        answers = {path: await client.get(f"{MANAGEMENT}{path}", headers=ADMIN) for path in ROUTES}
    assert {path: response.status_code for path, response in answers.items()} == dict.fromkeys(ROUTES, 200)
    assert "# TYPE http_requests_total counter" in answers["/metrics"].text
    assert answers["/admin/breakers"].json()["database"]["state"] == "closed"
    assert answers["/health/detailed"].headers["content-type"] == "application/health+json"


async def test_the_management_port_serves_neither_the_api_nor_the_probes(make_settings: SettingsFactory) -> None:
    """On the management port the API's routes, its docs and the probes are 404: a probe tests the API port."""
    async with client_for(make_settings()) as client:
        for path in ("/test/query", "/openapi.json", "/docs", "/health/live", "/health/ready", "/health"):
            assert (await client.get(f"{MANAGEMENT}{path}")).status_code == 404, path
            assert (await client.get(path)).status_code == 200, path


async def test_management_requests_are_neither_logged_nor_counted(
    make_settings: SettingsFactory, captured_logs: Callable[[], list[str]]
) -> None:
    """A scrape leaves no access line and no request metric; a /metrics on the API port counts as any unknown path."""
    async with client_for(make_settings()) as client:
        captured_logs()
        await client.get(f"{MANAGEMENT}/health/detailed")
        await client.get(f"{MANAGEMENT}/metrics")
        logged = captured_logs()
        await client.get("/metrics")
        body = (await client.get(f"{MANAGEMENT}/metrics")).text
    assert not [line for line in logged if '"message":"request"' in line]
    assert 'http_requests_total{handler="none",method="GET",status="404"} 1.0' in body
    assert 'handler="/metrics"' not in body


def test_the_management_port_must_differ_from_the_api_port(make_settings: SettingsFactory) -> None:
    """MANAGEMENT_PORT equal to PORT stops the service with one line naming both."""
    line = refusal(make_settings, PORT="8123", MANAGEMENT_PORT="8123")
    assert "MANAGEMENT_PORT (8123) must differ from PORT" in line


def test_the_development_server_serves_both_ports(make_settings: SettingsFactory) -> None:
    """`python -m {{ cookiecutter.package_name }} serve` listens on PORT and MANAGEMENT_PORT with one lifespan,
    logs both addresses, and stops on SIGTERM."""
    make_settings()  # a clean environment and a SQLite file of this test's own
    port, management = free_port(), free_port()
    env = {**os.environ, "PORT": str(port), "MANAGEMENT_PORT": str(management)}
    process = subprocess.Popen(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}", "serve"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("the development server did not answer within 30 s")
        scrape = httpx.get(f"http://127.0.0.1:{management}/metrics", timeout=5).status_code
        hidden = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert (live, scrape, hidden) == (200, 200, 404)
    assert f'"api":"http://127.0.0.1:{port}","management":"http://127.0.0.1:{management}"' in output
    assert output.count("Application startup complete") == 1
    assert "Application shutdown complete" in output
    assert process.returncode == 0  # a clean drain after SIGTERM
