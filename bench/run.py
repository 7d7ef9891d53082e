"""`make bench`: the baked service (A) against a bare FastAPI app (B), one gunicorn worker each.

Bakes the default answers, starts throwaway PostgreSQL and Redis (the baked project's tests/servers.py),
and loads each route with wrk (64 connections, 1 thread) in alternating A/B runs, server pinned to CPU 0
and wrk to CPU 1. Then: database queries under 200 readiness probes per second (counted at a fault
proxy), seconds from spawn to ready, the guard's per-call cost, RSS per worker. Prints a table and
writes bench/out/results.json and bench/out/bench.png. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import hotspots
import load
import procs
import project
import report
from load import Request
from report import Goal

OUT = project.TEMPLATE / "bench" / "out"
CONNECTIONS = 64
PROBE_RATE = 200
GOALS = {
    "live": Goal("/health/live", "", 0.90, ">="),
    "noop": Goal("no-op JSON route", "", 0.75, ">="),
    "read": Goal("cached read by id", "", 2.0, ">="),
    "write": Goal("create item", "", 0.80, ">="),
    "wrapper": Goal("guard wrapper", " us", 5.0, "<"),
    "readiness": Goal("readiness queries", " q/s", 1.0, "<="),
    "start": Goal("start to ready", " s", 1.5, "<"),
}
_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def commit() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=project.TEMPLATE, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


class Bench:
    """Owns every process and folder of one run; ``stack`` undoes them in reverse, whatever happens."""

    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.stack = stack
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        say("baking the default answers and installing them in .bake/bench-venv")
        self.project = project.bake(self.tmp / "bake")
        self.bin = project.project_venv(self.project, *(["py-spy"] if args.profile else []))
        self.package = project.package_name(self.project)
        sys.path.insert(0, str(self.project))
        servers = __import__("tests.servers", fromlist=["postgres_server"])
        say("starting throwaway PostgreSQL and Redis")
        try:
            self.postgres = servers.postgres_server()
            stack.callback(self.postgres.close)
            self.redis = servers.redis_server()
            stack.callback(self.redis.close)
        except BaseException as exc:  # servers.py calls pytest.skip() when it finds no server to run
            if type(exc).__name__ not in ("Skipped", "Failed"):
                raise
            raise SystemExit(f"bench: {exc}") from None
        env = self.env("setup", procs.free_port())
        project.check([str(self.bin / "python"), "-m", self.package, "migrate"], cwd=self.project, env=env)
        self.config = project.effective_settings(self.bin, self.project, env)

    def env(self, name: str, port: int, database_url: str | None = None) -> dict[str, str]:
        return project.service_env(
            database_url=database_url or self.postgres.url,
            redis_url=self.redis.url,
            port=port,
            metrics_dir=self.tmp / f"metrics-{name}",
            package=self.package,
        )

    def _start(self, name: str, cmd: list[str], env: dict[str, str], port: int, ready: str) -> procs.Server:
        log = self.tmp / f"{name}.log"
        server = procs.start(name, cmd, env=env, cwd=self.project, log=log, port=port, ready_path=ready)
        self.stack.callback(server.stop)
        return server

    def start_service(self, name: str, app: str | None = None, database_url: str | None = None) -> procs.Server:
        """A: ``gunicorn -c gunicorn.conf.py`` as generated (``app`` overrides its wsgi_app)."""
        port = procs.free_port()
        cmd = [str(self.bin / "gunicorn"), "-c", "gunicorn.conf.py", *([app] if app else [])]
        return self._start(name, cmd, self.env(name, port, database_url), port, "/health/ready")

    def start_bare(self) -> procs.Server:
        """B: the bare app on the service's worker class, with the service's server and pool settings."""
        port, server = procs.free_port(), self.config["server"]
        shm = ["--worker-tmp-dir", "/dev/shm"] if Path("/dev/shm").is_dir() else []  # as gunicorn.conf.py
        cmd = [
            str(self.bin / "gunicorn"), "-k", f"{self.package}.worker.Worker", "-w", "1", "-b", f"127.0.0.1:{port}",
            "--keep-alive", str(int(server["keepalive_seconds"])), "--timeout", str(int(server["worker_timeout_seconds"])),
            "--graceful-timeout", str(int(server["graceful_timeout"])), *shm, "bench.bare_app:create()",
        ]  # fmt: skip
        env = self.env("bare", port) | {"BENCH_ENGINE": json.dumps(self.config["db"])}
        return self._start("bare", cmd, env, port, "/health/live")

    def wrk(self, server: procs.Server, request: Request) -> load.WrkResult:
        args = self.args
        load.wrk(server.url, request, seconds=args.warmup, connections=CONNECTIONS, script_dir=self.tmp)
        result = load.wrk(server.url, request, seconds=args.seconds, connections=CONNECTIONS, script_dir=self.tmp)
        server.truncate_log()
        return result


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


def cache_counts(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    counts = {}
    for line in text.splitlines():
        if line.startswith("cache_requests_total{"):
            counts[line.split('result="')[1].split('"')[0]] = float(line.split()[-1])
    return counts


def throughput(bench: Bench, results: dict[str, Any]) -> None:
    service = bench.start_service("service")
    with_noop = bench.start_service("service-noop", "bench.app_with_noop:create()")
    bare = bench.start_bare()
    body = json.dumps({"name": "bench", "description": "created by make bench"})
    routes: list[tuple[str, str, procs.Server, Request | None]] = [
        ("live", "GET /health/live", service, Request(path="/health/live")),
        ("noop", "GET /bench/noop (no-op JSON)", with_noop, Request(path="/bench/noop")),
        ("read", "GET /api/v1/items/{id} (A: cached)", service, None),
        ("write", "POST /api/v1/items", service, Request("POST", "/api/v1/items", body)),
    ]
    results["routes"] = {}
    for key, label, a_server, request in routes:
        if request is None:  # seeded now, so that every id is in Redis well within its TTL
            paths = tuple(f"/api/v1/items/{item_id}" for item_id in seed(service.port, 100))
            request = Request(path=paths[0], paths=paths)
            before = cache_counts(service.port)
        pairs = []
        for n in range(bench.args.pairs):
            pair = {side: bench.wrk(server, request).as_dict() for side, server in (("A", a_server), ("B", bare))}
            pairs.append(pair)
            say(f"{label}: pair {n + 1}: A {pair['A']['rps']:.0f} req/s, B {pair['B']['rps']:.0f} req/s")
        results["routes"][key] = {"label": label, "pairs": pairs, "summary": report.route_summary(pairs)}
        if key == "read":
            after = cache_counts(service.port)
            results["routes"][key]["cache_A"] = {name: after[name] - before.get(name, 0) for name in after}
    results["rss_mib"] = {
        "A service": round(service.rss_mib(), 1),
        "A + no-op route": round(with_noop.rss_mib(), 1),
        "B bare": round(bare.rss_mib(), 1),
    }
    if bench.args.profile:
        results["profiles"] = profile(bench, [(key, a_server, request) for key, _l, a_server, request in routes])
    for server in (service, with_noop, bare):
        server.stop()


def profile(bench: Bench, targets: list[tuple[str, procs.Server, Request | None]]) -> dict[str, Any]:
    """py-spy on A's worker during one more wrk run per route: collapsed stacks and the top functions."""
    profiles = {}
    for key, server, request in targets:
        assert request is not None  # noqa: S101 - filled in by throughput()
        out = OUT / f"profile-{key}.txt"
        load.wrk(server.url, request, seconds=bench.args.warmup, connections=CONNECTIONS, script_dir=bench.tmp)
        spy = hotspots.record(bench.bin / "py-spy", server.worker_pid(), bench.args.seconds, out)
        load.wrk(server.url, request, seconds=bench.args.seconds, connections=CONNECTIONS, script_dir=bench.tmp)
        _, errors = spy.communicate(timeout=60)
        server.truncate_log()
        if spy.returncode != 0 or not out.exists():
            say(f"py-spy failed on {key}: {errors.decode(errors='replace')[-500:]}")
            continue
        profiles[key] = hotspots.summarise(out) | {"collapsed_stacks": str(out.relative_to(project.TEMPLATE))}
        say(f"profiled {key}: {out}")
    return profiles


def readiness(bench: Bench, results: dict[str, Any]) -> None:
    """200 probes/s on A's /health/ready, its database behind a counting proxy: queries per second per worker."""
    faults = __import__("tests.faults", fromlist=["FaultProxy"])
    with faults.FaultProxy.for_url(bench.postgres.url).run_in_thread() as proxy:
        server = bench.start_service("ready", database_url=proxy.url_for(bench.postgres.url))
        time.sleep(1.1)  # every cached check result from start-up expires
        queries, chunks = proxy.sent_containing(b"SELECT 1"), len(proxy.sent)
        probes = asyncio.run(load.paced(server.port, "/health/ready", rate=PROBE_RATE, seconds=bench.args.ready_seconds))
        queries, chunks = proxy.sent_containing(b"SELECT 1") - queries, len(proxy.sent) - chunks
        server.stop()
    seconds = float(probes["seconds"])  # type: ignore[arg-type]
    results["readiness"] = probes | {
        "workers": 1,
        "queries": queries,
        "queries_per_second": round(queries / seconds, 2),
        "round_trips_per_second": round(chunks / seconds, 2),
    }
    say(f"readiness: {queries} health queries in {seconds:.1f}s under {probes['rate']} probes/s")


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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs per route (default 3)")
    parser.add_argument("--seconds", type=float, default=8, help="measured seconds per wrk run (default 8)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds before each run (default 2)")
    parser.add_argument("--ready-seconds", type=float, default=10, help="seconds of readiness probing (default 10)")
    parser.add_argument("--quick", action="store_true", help="1 pair of 3 s runs: a smoke test, not a measurement")
    parser.add_argument("--profile", action="store_true", help="also py-spy A's worker on each route")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal fails")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.seconds, args.warmup, args.ready_seconds = 1, 3, 1, 3
    return args


def _terminate(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds the exit stack: servers stopped, folders removed


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (the Makefile's bench target does it)")
    signal.signal(signal.SIGTERM, _terminate)
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "commit": commit(),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "setup": {"connections": CONNECTIONS, "wrk_threads": 1, "workers": 1, "pairs": args.pairs,
                  "seconds": args.seconds, "warmup_seconds": args.warmup, "pinned": shutil.which("taskset") is not None},
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        results["setup"]["postgres"], results["setup"]["redis"] = type(bench.postgres).__name__, type(bench.redis).__name__
        throughput(bench, results)
        readiness(bench, results)
        start_to_ready(bench, results)
        wrapper(bench, results)
    report.write_json(results, OUT / "results.json")
    report.plot(results, GOALS, OUT / "bench.png")
    print(f"\nmake bench @ {results['commit']} ({results['when']}), 1 worker each, wrk -t1 -c{CONNECTIONS}, "
          f"{args.pairs} pairs of {args.seconds:g}s runs; A = service, B = bare FastAPI\n")  # fmt: skip
    print(report.table(results, GOALS))
    for key, summary in results.get("profiles", {}).items():
        print(hotspots.format_summary(key, summary))
    failing = report.failing(results, GOALS)
    print(f"\nfailing goals: {', '.join(failing) if failing else 'none'}")
    print(f"results: {OUT / 'results.json'}\nplot:    {OUT / 'bench.png'}")
    return 1 if failing and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
