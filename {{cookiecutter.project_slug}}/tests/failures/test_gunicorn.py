"""Startup, shutdown, worker death and metrics across workers, through real gunicorn on real PostgreSQL."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.failures.conftest import gunicorn
from tests.servers import ServerHandle
from tests.statements import StatementCounter

PROBES = ("/health/live", "/health/ready", "/health/startup", "/health")
MANAGEMENT = ("/metrics", "/admin/breakers", "/health/detailed")


QUERY_OK = '{handler="/test/query",method="GET",status="200"}'


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Poll ``predicate`` until it holds; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


def scrape_files(directory: Path) -> str:
    """What /metrics would show from the metric files gunicorn's workers left in ``directory``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry).decode()


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return 0


def sample(metrics: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_database_down_at_startup(tmp_path: Path, postgres: ServerHandle, migrated: str) -> None:
    """With PostgreSQL down, the service starts and lives, answers not-ready fast, and turns ready once it returns."""
    postgres.stop()
    with gunicorn(tmp_path, DATABASE_URL=migrated, DB_CONNECT_TIMEOUT_SECONDS="0.5") as server:
        assert status(f"{server.url}/health/live") == 200
        started = time.monotonic()
        assert status(f"{server.url}/health/ready") == 503
        answer_ms = (time.monotonic() - started) * 1000
        postgres.start()
        recovery = wait_for(lambda: status(f"{server.url}/health/ready") == 200, timeout=10)
        restarts = [m for m in server.messages() if "Booting worker" in m]
        print(f"\n[figure] ready answered 503 in {answer_ms:.0f} ms with the database down")
        print(f"[figure] ready {recovery:.2f} s after the database returned")
    assert answer_ms < 2000
    assert len(restarts) == 2, "no worker was restarted"


def test_sigterm_under_load_drains_in_flight_requests(tmp_path: Path, postgres: ServerHandle, migrated: str) -> None:
    """SIGTERM with 20 requests in flight: every one answers 2xx, the pool is closed, gunicorn exits 0 in budget."""
    with gunicorn(
        tmp_path,
        DATABASE_URL=migrated,
        GRACEFUL_TIMEOUT="20",
        DB_STATEMENT_TIMEOUT_MS="15000",
        DB_CONNECT_TIMEOUT_SECONDS="15",
    ) as server:
        for _ in range(20):  # open pooled connections in both workers while the database answers
            assert status(f"{server.url}/test/query") == 200

        async def load() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                # Every request waits on the paused database.
                requests = [asyncio.create_task(client.get("/test/query")) for _ in range(20)]
                await asyncio.sleep(1.0)
                assert not any(task.done() for task in requests), "requests finished before the SIGTERM"
                server.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(1.0)
                probes.append(status(f"{server.url}/health/ready"))
                postgres.resume()
                return [(await task).status_code for task in requests]

        probes: list[int] = []
        postgres.pause()
        started = time.monotonic()
        statuses = asyncio.run(load())
        code = server.process.wait(30)
        exit_seconds = time.monotonic() - started
        messages = server.messages()
    completed = sum(200 <= s < 300 for s in statuses)
    print(f"\n[figure] in-flight completed {completed}/{len(statuses)}; exit {code} {exit_seconds:.1f} s after SIGTERM")
    assert completed == len(statuses) == 20
    assert probes == [0], "a draining server must refuse (or fail) readiness probes"
    assert code == 0
    assert exit_seconds < 20
    assert messages.count("closed database pool") == 2
    assert any("draining" in m for m in messages)
    # Counted in batches, published as the workers stop: the drained requests are in the metrics they leave.
    served = sample(scrape_files(server.metrics_dir), "http_requests_total", QUERY_OK)
    assert served == 40


def test_access_lines_reach_the_log_without_other_output(tmp_path: Path, migrated: str) -> None:
    """Access lines are written in batches, yet a lone request's line is in the log within a second."""
    with gunicorn(tmp_path, DATABASE_URL=migrated, workers=1) as server:
        assert status(f"{server.url}/test/query") == 200
        waited = wait_for(
            lambda: any(r.get("route") == "/test/query" and r.get("status") == 200 for r in server.records()),
            timeout=1,
        )
    print(f"\n[figure] a lone request's access line was in the log {waited:.2f} s after its response")


def test_killed_worker_is_replaced(tmp_path: Path, migrated: str) -> None:
    """A worker killed with SIGKILL is replaced, requests keep succeeding, and its live gauges leave /metrics."""
    with gunicorn(tmp_path, DATABASE_URL=migrated) as server:
        wait_for(lambda: len(server.worker_pids()) == 2, timeout=10)
        victim = min(server.worker_pids())
        for _ in range(10):
            httpx.get(f"{server.url}/test/query")
        wait_for(lambda: any(str(victim) in f.name for f in server.metrics_dir.glob("gauge_live*")), timeout=5)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(), timeout=15)
        assert all(status(f"{server.url}/test/query") == 200 for _ in range(20))
        leftovers = [f.name for f in server.metrics_dir.glob("gauge_live*") if f"_{victim}." in f.name]
        assert leftovers == []
        assert "db_pool_size" in httpx.get(f"{server.management}/metrics").text


def test_workers_exit_when_the_master_dies(tmp_path: Path, migrated: str) -> None:
    """With the master SIGKILLed, each worker notices within about a second and shuts down: no orphan serves."""
    with gunicorn(tmp_path, DATABASE_URL=migrated) as server:
        wait_for(lambda: len(server.worker_pids()) == 2, timeout=10)
        workers = server.worker_pids()
        server.process.kill()
        server.process.wait(5)
        seconds = wait_for(lambda: not any(running(pid) for pid in workers), timeout=15)
        messages = server.messages()
    print(f"\n[figure] both orphaned workers exited {seconds:.1f} s after the master was killed")
    assert messages.count("shutting down: closing resources") == 2


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_management_routes_answer_on_the_management_port_only(tmp_path: Path, migrated: str) -> None:
    """Under gunicorn, /metrics, /admin and /health/detailed are 404 on the API port and answer on the management
    port, which in turn serves neither the API nor the probes."""
    token = "admin-token-7c1a"
    with gunicorn(tmp_path, DATABASE_URL=migrated, ADMIN_TOKEN=token) as server:
        auth = {"authorization": f"Bearer {token}"}
        on_api = {path: httpx.get(f"{server.url}{path}", headers=auth).status_code for path in MANAGEMENT}
        on_management = {path: httpx.get(f"{server.management}{path}", headers=auth) for path in MANAGEMENT}
        strays = {path: status(f"{server.management}{path}") for path in ("/test/query", "/health/ready")}
    assert on_api == dict.fromkeys(MANAGEMENT, 404)
    assert {path: response.status_code for path, response in on_management.items()} == dict.fromkeys(MANAGEMENT, 200)
    assert "http_requests_total" in on_management["/metrics"].text
    assert on_management["/admin/breakers"].json()["database"]["state"] == "closed"
    assert on_management["/health/detailed"].json()["status"] == "pass"
    assert strays == {"/test/query": 404, "/health/ready": 404}


def test_counters_from_two_workers_sum_in_one_scrape(tmp_path: Path, migrated: str) -> None:
    """Requests served by two workers add up in a single /metrics scrape, within one publishing interval."""
    with gunicorn(tmp_path, DATABASE_URL=migrated) as server:

        async def burst() -> list[int]:
            # New connection per request, 10 at a time: the kernel spreads them over both workers.
            limits = httpx.Limits(max_connections=10, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
                return [r.status_code for r in await asyncio.gather(*(client.get("/test/query") for _ in range(200)))]

        assert set(asyncio.run(burst())) == {200}
        time.sleep(1.0)  # each worker publishes its counts every 0.5 s; the one answering the scrape, at once
        metrics = httpx.get(f"{server.management}/metrics").text
        counter_files = list(server.metrics_dir.glob("counter_*.db"))
    served = sample(metrics, "http_requests_total", QUERY_OK)
    assert served == 200
    assert len(counter_files) == 2, "one worker served everything: the sum proves nothing"


def test_a_probe_storm_costs_one_query_per_ttl_per_worker(tmp_path: Path, migrated: str) -> None:
    """200 readiness probes within about a second run the database check at most once per TTL per worker."""
    with StatementCounter.for_url(migrated).run_in_thread() as counter:
        with gunicorn(tmp_path, DATABASE_URL=counter.url_for(migrated)) as server:
            for _ in range(2):  # both workers connect (new connections spread over them), then results expire
                wait_for(lambda: all(status(f"{server.url}/health/ready") == 200 for _ in range(10)), timeout=10)
                time.sleep(1.1)
            before = counter.counts.copy()
            started = time.monotonic()

            async def storm() -> list[int]:
                limits = httpx.Limits(max_keepalive_connections=0)  # new connections: both workers get probes
                async with httpx.AsyncClient(base_url=server.url, limits=limits) as client:
                    results = []
                    for _ in range(20):
                        batch = await asyncio.gather(*(client.get("/health/ready") for _ in range(10)))
                        results += [r.status_code for r in batch]
                        await asyncio.sleep(0.03)
                    return results

            statuses = asyncio.run(storm())
            elapsed = time.monotonic() - started
            executed = counter.counts - before
    checks = executed["SELECT 1"]
    print(
        f"\n[figure] {len(statuses)} readiness probes in {elapsed:.2f}s: {checks} checks, statements {dict(executed)}"
    )
    assert set(statuses) == {200}
    assert checks >= 1, "the counter saw no check at all"
    # Each of the 2 workers runs the check at most once per 1 s TTL; a burst spans at most ceil(elapsed) + 1 windows.
    assert checks <= 2 * (math.ceil(elapsed) + 1)


def test_secrets_never_leak(tmp_path: Path, postgres: ServerHandle, migrated: str) -> None:
    """The database password and the health token appear in no response, no log line and no check-config output."""
    password = urlsplit(migrated).password
    assert password
    token = "health-token-5e0f"
    postgres.stop()
    with gunicorn(tmp_path, DATABASE_URL=migrated, HEALTH_TOKEN=token, DB_CONNECT_TIMEOUT_SECONDS="0.5") as server:
        auth = {"authorization": f"Bearer {token}"}
        urls = [f"{server.url}{path}" for path in PROBES] + [f"{server.management}/health/detailed"]
        bodies = [httpx.get(url, headers=auth).text for url in urls]
        bodies.append(httpx.get(f"{server.url}/test/query").text)
        postgres.start()
        wait_for(lambda: status(f"{server.url}/health/ready") == 200, timeout=10)
        bodies += [httpx.get(url, headers=auth).text for url in urls]
        logs = server.log.read_text()
    config = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}", "check-config"],
        env={**os.environ, "DATABASE_URL": migrated, "HEALTH_TOKEN": token},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "database:responseTime" in bodies[-1]
    for text in (*bodies, logs, config):
        assert password not in text
        assert token not in text
