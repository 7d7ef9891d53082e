from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.checks import Check, HealthChecks, Result, memory_check, overall
from tests.conftest import MANAGEMENT, SettingsFactory, client_for
from tests.fakes import FakeClock


def checks_of(checks: list[Check], **options: Any) -> HealthChecks:
    registry = HealthChecks(**options)
    for check in checks:
        registry.add(check)
    return registry


class Counting:
    def __init__(self, result: Result | Exception, delay: float = 0.0) -> None:
        self.result = result
        self.delay = delay
        self.runs = 0

    async def __call__(self) -> Result:
        self.runs += 1
        await asyncio.sleep(self.delay)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_results_are_cached_and_shared() -> None:
    """A hundred concurrent probes within the TTL cost one run of the check; after the TTL, one more."""
    clock = FakeClock()
    probe = Counting(Result("pass"), delay=0.01)
    checks = checks_of([Check("database:responseTime", "datastore", True, probe)], timeout=1, ttl=1, clock=clock)
    await asyncio.gather(*(checks.results() for _ in range(100)))
    assert probe.runs == 1
    clock.advance(1.01)
    await checks.results()
    assert probe.runs == 2


async def test_a_hung_check_fails_within_its_timeout() -> None:
    """A check that never answers is reported as failing after its own timeout."""
    hung = Check("database:responseTime", "datastore", True, Counting(Result("pass"), 10))
    checks = checks_of([hung], timeout=0.05, ttl=1)
    results = await asyncio.wait_for(checks.results(), 1)
    assert results["database:responseTime"][1].status == "fail"


async def test_non_critical_failure_is_a_warning() -> None:
    """A failing non-critical check makes the status warn, not fail, and readiness ignores it."""
    checks = checks_of(
        [
            Check("database:responseTime", "datastore", True, Counting(Result("pass"))),
            Check("search:responseTime", "datastore", False, Counting(ConnectionError("down"))),
        ],
        timeout=1,
        ttl=1,
    )
    results = await checks.results()
    assert overall(results) == "warn"
    assert list(await checks.results(critical_only=True)) == ["database:responseTime"]


@pytest.mark.parametrize(("usage", "status"), [(500, "pass"), (800, "warn"), (950, "fail")])
async def test_memory_against_cgroup_limit(tmp_path: Path, usage: int, status: str) -> None:
    """Memory use warns from 75% of the cgroup limit and fails from 90%."""
    (tmp_path / "memory.current").write_text(f"{usage}\n")
    (tmp_path / "memory.max").write_text("1000\n")
    result = await memory_check(0.75, 0.9, cgroup=tmp_path).run()
    assert result.status == status
    assert result.observed_unit == "percent"


async def test_startup_fails_until_the_lifespan_has_run(make_settings: SettingsFactory) -> None:
    """Before the lifespan has started, the startup and readiness probes answer 503 while liveness answers 200."""
    import httpx

    from {{ cookiecutter.package_name }}.app import create_app

    app = create_app(make_settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/health/startup")).status_code == 503
        assert (await client.get("/health/ready")).status_code == 503
        assert (await client.get("/health/live")).status_code == 200


async def test_probes_on_embedded_defaults(make_settings: SettingsFactory) -> None:
    """Every probe answers 200 on a healthy service, and detailed health follows the IETF format."""
    async with client_for(make_settings()) as client:
        for path in ("/health/live", "/health/startup", "/health/ready", "/health"):
            assert (await client.get(path)).status_code == 200, path
        detailed = await client.get(f"{MANAGEMENT}/health/detailed")
    assert detailed.headers["content-type"] == "application/health+json"
    body = detailed.json()
    assert body["status"] == "pass"
    entry = body["checks"]["database:responseTime"][0]
    assert {"componentType", "observedValue", "observedUnit", "status", "time"} <= entry.keys()
    assert body["checks"]["database:circuitBreaker"][0]["observedValue"] == "closed"


async def test_detailed_health_needs_the_token(make_settings: SettingsFactory) -> None:
    """With HEALTH_TOKEN set, /health/detailed answers 401 without the bearer token and 200 with it."""
    async with client_for(make_settings(HEALTH_TOKEN="s3cret-token")) as client:
        assert (await client.get(f"{MANAGEMENT}/health/detailed")).status_code == 401
        wrong = await client.get(f"{MANAGEMENT}/health/detailed", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await client.get(f"{MANAGEMENT}/health/detailed", headers={"authorization": "Bearer s3cret-token"})
        assert right.status_code == 200
        assert "s3cret-token" not in right.text


async def test_operators_control_breakers_with_the_admin_token(make_settings: SettingsFactory) -> None:
    """With ADMIN_TOKEN set, an operator can force the database breaker open (reads 503) and reset it."""
    async with client_for(make_settings(ADMIN_TOKEN="admin-token")) as client:
        url = f"{MANAGEMENT}/admin/breakers/database"
        assert (await client.post(url, json={"action": "force_open"})).status_code == 401
        auth = {"authorization": "Bearer admin-token"}
        forced = await client.post(url, json={"action": "force_open"}, headers=auth)
        assert forced.json()["state"] == "forced_open"
        assert (await client.get(f"{MANAGEMENT}/admin/breakers")).status_code == 401
        breakers = (await client.get(f"{MANAGEMENT}/admin/breakers", headers=auth)).json()
        assert breakers["database"]["state"] == "forced_open"
        refused = await client.get("/test/query")
        assert refused.status_code == 503 and "retry-after" in refused.headers
        assert (await client.post(url, json={"action": "reset"}, headers=auth)).json()["state"] == "closed"
        assert (await client.get("/test/query")).status_code == 200
        unknown = await client.post(f"{MANAGEMENT}/admin/breakers/nope", json={"action": "reset"}, headers=auth)
        assert unknown.status_code == 404


async def test_admin_routes_are_absent_without_a_token(make_settings: SettingsFactory) -> None:
    """Without ADMIN_TOKEN, no admin route exists."""
    async with client_for(make_settings()) as client:
        response = await client.post(f"{MANAGEMENT}/admin/breakers/database", json={"action": "reset"})
    assert response.status_code == 404
