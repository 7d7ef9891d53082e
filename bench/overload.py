"""The overload row: goodput under about three times capacity, for the service and for the bare app.

Per server: capacity first (``hey`` with 32 clients as fast as answered, the 200s per second), then a burst from
``BURST_CLIENTS`` clients, each capped so that together they offer 3x that capacity, each giving up after 1 s, while
``/health/live`` and ``/health/ready`` are asked every second on new connections with a 1 s timeout (as a
kubelet does); then capacity again. Goodput is the 200s answered within the timeout, per second, over the
capacity measured in the same run. Servers on CPU 0, hey on CPU 1 (the probes float).
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import threading
import time
import urllib.request
from typing import Any

import procs
from harness import Bench, say

PAGE = "/api/v1/items?limit=50"
PROBES = ("/health/live", "/health/ready")
BURST_CLIENTS = 2000
OFFERED = 3.0


def hey(url: str, *, clients: int, seconds: float, rate: float | None = None) -> list[tuple[int, float]]:
    """(status, seconds) of each request answered within 1 s."""
    command = ["hey", "-c", str(clients), "-z", f"{seconds:g}s", "-t", "1", "-o", "csv"]
    command += ["-q", f"{rate:.3f}"] if rate else []
    out = subprocess.run(
        procs.pinned([*command, url], procs.LOAD_CPU), capture_output=True, text=True, check=True, timeout=seconds + 90
    ).stdout
    return [(int(row["status-code"]), float(row["response-time"])) for row in csv.DictReader(io.StringIO(out))]


def _probe(base: str, stop: threading.Event, results: dict[str, list[float | None]]) -> None:
    while not stop.is_set():
        for path in PROBES:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(base + path, timeout=1.0) as answer:  # noqa: S310 - our own server
                    ok = answer.status == 200
            except OSError:
                ok = False
            took = time.monotonic() - started
            results[path].append(took if ok and took < 1.0 else None)
        stop.wait(1.0)


def _p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1) if ordered else float("nan")


def measure(server: procs.Server, seconds: float, clients: int) -> dict[str, Any]:
    url = server.url + PAGE
    hey(url, clients=32, seconds=1)  # warm
    capacity = sum(1 for code, _ in hey(url, clients=32, seconds=3) if code == 200) / 3
    probes: dict[str, list[float | None]] = {path: [] for path in PROBES}
    stop = threading.Event()
    prober = threading.Thread(target=_probe, args=(server.url, stop, probes), daemon=True)
    prober.start()
    try:
        burst = hey(url, clients=clients, seconds=seconds, rate=OFFERED * capacity / clients)
    finally:
        stop.set()
        prober.join(5)
    after = sum(1 for code, _ in hey(url, clients=32, seconds=3) if code == 200) / 3
    ok = [took for code, took in burst if code == 200]
    refused = [took for code, took in burst if code == 503]
    return {
        "capacity": round(capacity, 1),
        "goodput": round(len(ok) / seconds, 1),
        "ratio": round(len(ok) / seconds / capacity, 3) if capacity else 0.0,
        "p50_ms": _p(ok, 0.5),
        "p99_ms": _p(ok, 0.99),
        "refused": len(refused),
        "refused_p50_ms": _p(refused, 0.5),
        "other": len(burst) - len(ok) - len(refused),
        "after_ratio": round(after / capacity, 3) if capacity else 0.0,
        "probes": {path: f"{sum(t is not None for t in got)}/{len(got)}" for path, got in probes.items()},
        "probe_max_ms": max((t * 1000 for got in probes.values() for t in got if t is not None), default=0.0),
    }


def overload(bench: Bench, results: dict[str, Any], only: set[str] | None = None) -> None:
    if shutil.which("hey") is None:
        say("hey is not installed (apt-get install hey): no overload row")
        return
    quick = bench.args.quick
    seconds, clients = (5, 500) if quick else (15, BURST_CLIENTS)
    proxy = __import__("tests.faults", fromlist=["FaultProxy"]).FaultProxy.for_url(bench.postgres.url)
    slow = bench.stack.enter_context(proxy.run_in_thread())
    slow.latency(0.05)
    scenarios = {
        "service": lambda: bench.start_service("overload-service"),
        "bare": lambda: bench.start_bare("overload-bare"),
        "service, limit off": lambda: bench.start_service("overload-off", extra_env={"ADMISSION_ENABLED": "false"}),
        "service, 2 workers": lambda: bench.start_service("overload-2w", extra_env={"WEB_CONCURRENCY": "2"}),
        # Each new connection takes several round trips through the proxy: the checks get the time for them.
        "service, PostgreSQL +50 ms": lambda: bench.start_service(
            "overload-slowdb",
            database_url=slow.url_for(bench.postgres.url),
            extra_env={"HEALTH_CHECK_TIMEOUT_SECONDS": "5", "DB_CONNECT_TIMEOUT_SECONDS": "5"},
        ),
    }
    rows = results.setdefault("overload", {})
    for name, start in scenarios.items():
        if only and name not in only:
            continue
        say(f"overload: {name}, capacity at 32 clients, then {OFFERED:g}x from {clients} clients for {seconds} s")
        try:
            server = start()
        except RuntimeError as exc:  # a scenario that cannot start is reported, and the others still run
            say(f"  {name}: did not start: {str(exc).splitlines()[0]}")
            continue
        try:
            rows[name] = measure(server, seconds, clients)
            rows[name]["breaker_opened"] = _breaker_opened(server)
        finally:
            server.stop()
        say(f"  {rows[name]}")


def _breaker_opened(server: procs.Server) -> bool:
    if server.management_port is None:  # the bare app has no breaker
        return False
    url = f"http://127.0.0.1:{server.management_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own server
            return 'to_state="open"' in answer.read().decode()
    except OSError:
        return False


def table(rows: dict[str, dict[str, Any]]) -> str:
    """The overload rows: goodput over the capacity measured just before, p99 of the 200s, refusals, probes."""
    head = "| overload: 3x capacity, 1 s timeouts | capacity/s | goodput/s | goodput/capacity | 200s p50 / p99 ms |"
    head += " refused (p50 ms) | timed out | after/capacity | probes live, ready (max ms) | breaker opened |"
    lines = [head, "|" + " --- |" * 10]
    for name, row in rows.items():
        probes = ", ".join(row["probes"].values())
        lines.append(
            f"| {name} | {row['capacity']:.0f} | {row['goodput']:.0f} | **{row['ratio']:.2f}** |"
            f" {row['p50_ms']:.0f} / {row['p99_ms']:.0f} | {row['refused']} ({row['refused_p50_ms']:.1f}) |"
            f" {row['other']} | {row['after_ratio']:.2f} | {probes} ({row['probe_max_ms']:.0f}) |"
            f" {'yes' if row['breaker_opened'] else 'no'} |"
        )
    return "\n".join(lines)
