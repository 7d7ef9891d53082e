"""Overload through real gunicorn on real PostgreSQL: about three times capacity, from many clients with 1 s timeouts.

Only the behaviour is asserted; the figures (goodput against capacity, latencies) are printed, and measured
properly in ``make bench`` (its overload row), where a noisy neighbour cannot fail a test.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.failures.conftest import gunicorn
from tests.load import SERVER_CPU, Prober, hey, pinned
from tests.servers import ServerHandle

PAGE = "/api/v1/items?limit=50"
PROBES = ("/health/live", "/health/ready")


def seed(base: str, count: int) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        for i in range(count):
            client.post("/api/v1/items", json={"name": f"item {i}", "description": "load"}).raise_for_status()


def test_three_times_capacity_is_shed_early_and_probes_keep_answering(
    tmp_path: Path, postgres: ServerHandle, migrated: str
) -> None:
    """Offered 3x capacity, a worker refuses the excess with 503 + Retry-After, probes answer 200 within 1 s, the
    breaker stays closed, and the worker serves again as before once the burst ends."""
    with gunicorn(tmp_path, workers=1, DATABASE_URL=migrated) as server:
        pinned(server.process.pid, SERVER_CPU)
        for pid in server.worker_pids():
            pinned(pid, SERVER_CPU)
        seed(server.url, 50)
        url = server.url + PAGE
        hey(url, clients=32, seconds=1)  # warm: the pool's connections, the worker's caches
        before = hey(url, clients=32, seconds=3)
        clients = 500
        prober = Prober(server.url, [*PROBES, PAGE])
        with prober.running():
            burst = hey(url, clients=clients, seconds=10, rate=3 * before.goodput / clients)
        after = hey(url, clients=32, seconds=3)
        breaker = httpx.get(server.management + "/health/detailed").json()["checks"]["database:circuitBreaker"][0]
        metrics = httpx.get(server.management + "/metrics").text

    refusals = [headers for path, code, _, headers in prober.results if path == PAGE and code == 503]
    print(
        f"\n[figure] capacity {before.goodput:.0f}/s at 32 clients; offered {3 * before.goodput:.0f}/s by {clients}"
        f" clients: goodput {burst.goodput:.0f}/s ({burst.goodput / before.goodput:.2f} of capacity), 200s' p99"
        f" {burst.percentile(200, 0.99) * 1000:.0f} ms, {burst.count(503)} refused (p50"
        f" {burst.percentile(503, 0.5) * 1000:.1f} ms); after: {after.goodput:.0f}/s"
        f" ({after.goodput / before.goodput:.2f}); probes failed: {sum(len(prober.failed(p)) for p in PROBES)}"
    )
    assert {code for code, _ in burst.answers} <= {200, 503}
    assert burst.count(503) > 0, "the burst was not over capacity: nothing was refused"
    for headers in refusals:  # the refusal's shape is tested in process (tests/unit/test_admission.py)
        assert headers is not None
        assert headers["retry-after"] == "1"
        assert headers["content-type"] == "application/problem+json"
    for path in PROBES:
        assert len([r for r in prober.results if r[0] == path]) >= 8
        assert prober.failed(path) == [], f"{path} failed or took 1 s or more during the burst"
    assert breaker["state"] == "closed"
    assert 'to_state="open"' not in metrics
    assert after.count(200) > 0  # serving again with nothing reset; how much of capacity is the bench's figure
