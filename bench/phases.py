"""The bench's measurements, each adding its part to the results dict."""

from __future__ import annotations

import asyncio
import http.client
import json
import statistics
import time
from typing import Any

import hotspots
import load
import procs
import project
import report
from harness import CONNECTIONS, OUT, Bench, say
from load import Request
from sink import otlp_sink

PROBE_RATE = 200


def seed(port: int, count: int) -> list[int]:
    """Create ``count`` items through the service (which caches each) and read each once."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ids = []
    for i in range(count):
        body = json.dumps({"name": f"bench item {i}", "description": "seeded by make bench"})
        conn.request("POST", "/api/v1/items", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 201:
            raise RuntimeError(f"seeding answered {response.status}: {data[:300]!r}")
        ids.append(int(json.loads(data)["id"]))
    for item_id in ids:
        conn.request("GET", f"/api/v1/items/{item_id}")
        conn.getresponse().read()
    conn.close()
    return ids


def scrape(server: procs.Server) -> str:
    """The service's /metrics: on its management port, or on its API port for a template from before it (--ref)."""
    for port in (server.management_port, server.port):
        if port is None:
            continue
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            text = response.read().decode()
        except ConnectionRefusedError:
            continue
        finally:
            conn.close()
        if response.status == 200:
            return text
    raise RuntimeError(f"{server.name}: no /metrics on port {server.management_port} or {server.port}")


def cache_counts(server: procs.Server) -> dict[str, float]:
    text = scrape(server)
    counts = {}
    for line in text.splitlines():
        if line.startswith("cache_requests_total{"):
            counts[line.split('result="')[1].split('"')[0]] = float(line.split()[-1])
    return counts


def throughput(bench: Bench, results: dict[str, Any]) -> None:
    service = bench.start_service("service")
    with_noop = bench.start_service("service-noop", "bench.app_with_noop:create()")
    # The same, its access line off: the contrast that says what one JSON line per request costs.
    quiet = bench.start_service("service-noop-quiet", "bench.app_with_noop:create()", log_level="WARNING")
    bare = bench.start_bare()
    # The bare app with prometheus-fastapi-instrumentator's middleware: what its HTTP metrics alone cost.
    instrumented = bench.start_bare("bare-instrumentator", {"BENCH_INSTRUMENTATOR": "1"})
    body = json.dumps({"name": "bench", "description": "created by make bench"})
    # The cached read against three bare reads of the same rows: the ORM's, SQLAlchemy Core's, asyncpg's.
    reads = {"read": "/api/v1/items", "read-core": "/bench/core/items", "read-asyncpg": "/bench/asyncpg/items"}
    routes: list[tuple[str, str, procs.Server, Request | None]] = [
        ("live", "GET /health/live", service, Request(path="/health/live")),
        ("noop", "GET /bench/noop (no-op JSON)", with_noop, Request(path="/bench/noop")),
        ("noop-quiet", "  same, LOG_LEVEL=WARNING", quiet, Request(path="/bench/noop")),
        ("noop-instrumentator", "  A: B + instrumentator", instrumented, Request(path="/bench/noop")),
        ("read", "GET /api/v1/items/{id} (A: cached)", service, None),
        ("read-core", "  same, B: SQLAlchemy Core", service, None),
        ("read-asyncpg", "  same, B: asyncpg fetchrow", service, None),
        ("write", "POST /api/v1/items", service, Request("POST", "/api/v1/items", body)),
    ]
    results["routes"] = {}
    loaded: list[tuple[str, procs.Server, Request]] = []
    ids: list[int] = []
    for key, label, a_server, request in routes:
        b_request = None
        if key in reads:
            if not ids:  # seeded now, so that every id is in Redis well within its TTL
                ids = seed(service.port, 100)
                before = cache_counts(service)
            paths = tuple(f"/api/v1/items/{item_id}" for item_id in ids)
            request = Request(path=paths[0], paths=paths)
            b_paths = tuple(f"{reads[key]}/{item_id}" for item_id in ids)
            b_request = Request(path=b_paths[0], paths=b_paths)
        assert request is not None
        if key not in ("read-core", "read-asyncpg"):  # A's side of those is the read's: profiled once
            loaded.append((key, a_server, request))
        pairs = []
        for n in range(bench.args.pairs):
            pair = bench.pair(a_server, bare, request, b_request)
            pairs.append(pair)
            say(f"{label}: pair {n + 1}: A {pair['A']['rps']:.0f} req/s, B {pair['B']['rps']:.0f} req/s")
        results["routes"][key] = {"label": label, "pairs": pairs, "summary": report.route_summary(pairs)}
        if key == "read-asyncpg":  # the last of the three reads
            after = cache_counts(service)
            results["routes"][key]["cache_A"] = {name: after[name] - before.get(name, 0) for name in after}
    results["rss_mib"] = {
        "A service": round(service.rss_mib(), 1),
        "A + no-op route": round(with_noop.rss_mib(), 1),
        "A + no-op, WARNING": round(quiet.rss_mib(), 1),
        "B + instrumentator": round(instrumented.rss_mib(), 1),
        "B bare": round(bare.rss_mib(), 1),
    }
    if bench.args.profile:
        results["profiles"] = profile(bench, loaded)
    for server in (service, with_noop, quiet, instrumented, bare):
        server.stop()


# Tracing on (A) against the same service with tracing off (B), spans sent to a sink that answers 200: every
# request sampled, then 1% of them as a service under load would be configured. Two pairs per row keep the four
# rows under three minutes.
TRACED = [
    ("noop-traced", "  no-op, tracing 100% (B: off)", "noop", "always_on"),
    ("noop-traced-1pct", "  no-op, tracing 1% (B: off)", "noop", "parentbased_traceidratio"),
    ("read-traced", "  cached read, tracing 100% (B: off)", "read", "always_on"),
    ("read-traced-1pct", "  cached read, tracing 1% (B: off)", "read", "parentbased_traceidratio"),
]


def tracing(bench: Bench, results: dict[str, Any]) -> None:
    noop_app = "bench.app_with_noop:create()"
    with otlp_sink() as endpoint:
        off = {"noop": bench.start_service("noop-untraced", noop_app), "read": bench.start_service("read-untraced")}
        ids = seed(off["read"].port, 100)
        requests = {
            "noop": Request(path="/bench/noop"),
            "read": Request(path=f"/api/v1/items/{ids[0]}", paths=tuple(f"/api/v1/items/{i}" for i in ids)),
        }
        for key, label, route, sampler in TRACED:
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": sampler,
                   "OTEL_TRACES_SAMPLER_ARG": "0.01"}  # fmt: skip
            traced = bench.start_service(key, noop_app if route == "noop" else None, extra_env=env)
            pairs = []
            for n in range(max(1, bench.args.pairs - 1)):
                pair = bench.pair(traced, off[route], requests[route])
                pairs.append(pair)
                say(f"{label.strip()}: pair {n + 1}: A {pair['A']['rps']:.0f} req/s, B {pair['B']['rps']:.0f} req/s")
            results["routes"][key] = {"label": label, "pairs": pairs, "summary": report.route_summary(pairs)}
            results["rss_mib"][f"A {key}"] = round(traced.rss_mib(), 1)
            traced.stop()
        for server in off.values():
            server.stop()


def profile(bench: Bench, targets: list[tuple[str, procs.Server, Request]]) -> dict[str, Any]:
    """py-spy on A's worker during one more wrk run per route: collapsed stacks and the top functions."""
    profiles = {}
    for key, server, request in targets:
        out = OUT / f"profile-{key}.txt"
        load.wrk(server.url, request, seconds=bench.args.warmup, connections=CONNECTIONS, script_dir=bench.tmp)
        spy = hotspots.record(bench.bin / "py-spy", server.worker_pid(), bench.args.seconds, out)
        load.wrk(server.url, request, seconds=bench.args.seconds, connections=CONNECTIONS, script_dir=bench.tmp)
        _, errors = spy.communicate(timeout=60)
        server.truncate_log()
        if spy.returncode != 0 or not out.exists():
            say(f"py-spy failed on {key}: {errors.decode(errors='replace')[-500:]}")
            continue
        summary = hotspots.summarise(out, bench.package)
        busy = int(summary["samples"]) / (hotspots.RATE * int(bench.args.seconds))  # type: ignore[call-overload]
        profiles[key] = summary | {"busy": round(busy, 3), "collapsed_stacks": str(out.relative_to(project.TEMPLATE))}
        say(f"profiled {key}: {out}")
    return profiles


def readiness(bench: Bench, results: dict[str, Any]) -> None:
    """200 probes/s on A's /health/ready, its database behind a statement-counting proxy."""
    from tests.statements import StatementCounter  # the baked project's own, importable once its servers run

    with StatementCounter.for_url(bench.postgres.url).run_in_thread() as counter:
        server = bench.start_service("ready", database_url=counter.url_for(bench.postgres.url))
        time.sleep(1.1)  # every cached check result from start-up expires
        before = counter.counts.copy()
        probes = asyncio.run(
            load.paced(server.port, "/health/ready", rate=PROBE_RATE, seconds=bench.args.ready_seconds)
        )
        statements = counter.counts - before
        server.stop()
    seconds = float(probes["seconds"])  # type: ignore[arg-type]
    checks = statements.get("SELECT 1", 0)  # the readiness check's own query
    results["readiness"] = probes | {
        "workers": 1,
        "check_queries": checks,
        "queries_per_second": round(checks / seconds, 2),
        "statements_per_second": round(sum(statements.values()) / seconds, 2),
        "statements": dict(statements.most_common()),
    }
    say(f"readiness: {checks} health-check queries, {sum(statements.values())} statements in {seconds:.1f}s")


def start_to_ready(bench: Bench, results: dict[str, Any]) -> None:
    runs = []
    for n in range(3):
        server = bench.start_service(f"start-{n}")
        runs.append(round(server.ready_seconds, 3))
        server.stop()
    results["start_to_ready"] = {"runs": runs, "median_seconds": statistics.median(runs)}
    say(f"start to ready: {runs}")


def wrapper(bench: Bench, results: dict[str, Any]) -> None:
    script = str(project.TEMPLATE / "bench" / "wrapper_bench.py")
    results["wrapper"] = {}
    env = {k: v for k, v in bench.env("wrapper", procs.free_port()).items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    for mode, flags in (("single_process", []), ("multiprocess", ["--multiprocess"])):
        cmd = procs.pinned([str(bench.bin / "python"), script, "--package", bench.package, *flags], procs.SERVER_CPU)
        out = project.check(cmd, cwd=bench.project, env=env)
        results["wrapper"][mode] = json.loads(out.stdout.strip().splitlines()[-1])
    say(f"guard wrapper: {results['wrapper']['multiprocess']['overhead_ns']:.0f} ns per call")
