"""`make bench`: the baked service (A) against a bare FastAPI app (B), one gunicorn worker each.

Bakes the default answers, starts throwaway PostgreSQL and Redis (the baked project's own test servers),
and loads each route with wrk (64 connections, 1 thread) in alternating A/B runs, server pinned to CPU 0
and wrk to CPU 1. Then: database queries under 200 readiness probes per second (counted at a
statement-counting proxy), seconds from spawn to ready, the guard's per-call cost, RSS per worker. Prints a table and
writes bench/out/results.json and bench/out/bench.png. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

import hotspots
import overload
import phases
import procs
import project
import report
from harness import CONNECTIONS, OUT, Bench, say
from report import Goal

GOALS = {
    "live": Goal("/health/live", "", 1.0, ">="),
    "noop": Goal("no-op JSON route", "", 0.90, ">="),
    "noop-quiet": Goal("no-op JSON route, LOG_LEVEL=WARNING", "", 0.0, ""),  # a contrast: what the access line costs
    # A contrast: prometheus-fastapi-instrumentator's middleware alone on the bare app, against the bare app.
    "noop-instrumentator": Goal("no-op JSON route, bare + instrumentator", "", 0.0, ""),
    "read": Goal("cached read by id, B: ORM", "", 2.0, ">="),
    "read-core": Goal("cached read by id, B: SQLAlchemy Core", "", 2.0, ">="),
    "read-asyncpg": Goal("cached read by id, B: asyncpg", "", 1.0, ">="),
    "write": Goal("create item", "", 0.90, ">="),
    "noop-traced": Goal("no-op route, tracing 100% / off", "", 0.0, ""),  # a contrast: every request sampled
    "noop-traced-1pct": Goal("no-op route, tracing 1% / off", "", 0.90, ">="),
    "read-traced": Goal("cached read, tracing 100% / off", "", 0.0, ""),
    "read-traced-1pct": Goal("cached read, tracing 1% / off", "", 0.90, ">="),
    "wrapper": Goal("guard wrapper", " us", 5.0, "<"),
    "readiness": Goal("readiness queries", " q/s", 1.0, "<="),
    "start": Goal("start to ready", " s", 1.5, "<"),
}


def commit(ref: str | None) -> str:
    """The benched commit: ``ref``'s, or HEAD's with ``+dirty`` when the working tree has changes."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=project.TEMPLATE, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    sha = git("rev-parse", "--short", ref or "HEAD") or "unknown"
    if ref is not None:
        return sha
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs per route (default 3)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=8,
        help="seconds per side and pair, in 2 s runs alternating A and B (default 8)",
    )
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds per side before each pair (default 2)")
    parser.add_argument("--ready-seconds", type=float, default=10, help="seconds of readiness probing (default 10)")
    parser.add_argument("--quick", action="store_true", help="1 pair of 3 s: a smoke test, not a measurement")
    parser.add_argument("--profile", action="store_true", help="also py-spy A's worker on each route")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal fails")
    parser.add_argument("--overload-only", action="store_true", help="only the overload row (about 3 minutes)")
    parser.add_argument("--ref", help="bench the template as committed at this git ref, not the working tree")
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
        "commit": commit(args.ref),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "setup": {"connections": CONNECTIONS, "wrk_threads": 1, "workers": 1, "pairs": args.pairs,
                  "seconds": args.seconds, "warmup_seconds": args.warmup,
                  "pinned": shutil.which("taskset") is not None},
    }  # fmt: skip
    results["setup"]["cpu_busy_before"] = round(procs.cpu_busy(), 3)
    if results["setup"]["cpu_busy_before"] > 0.1:
        say(f"the machine is {results['setup']['cpu_busy_before']:.0%} busy before the bench: expect noisy numbers")
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        results["setup"]["postgres"], results["setup"]["redis"] = (
            type(bench.postgres).__name__,
            type(bench.redis).__name__,
        )
        if not args.overload_only:
            phases.throughput(bench, results)
            phases.tracing(bench, results)
            phases.readiness(bench, results)
            phases.start_to_ready(bench, results)
            phases.wrapper(bench, results)
        overload.overload(bench, results)
    results["setup"]["cpu_busy_after"] = round(procs.cpu_busy(), 3)
    report.write_json(results, OUT / "results.json")
    if args.overload_only:
        print(overload.table(results.get("overload", {})))
        return 0
    report.plot(results, GOALS, OUT / "bench.png")
    print(f"\nmake bench @ {results['commit']} ({results['when']}), 1 worker each, wrk -t1 -c{CONNECTIONS}, "
          f"{args.pairs} pairs of {args.seconds:g} s per side in alternating 2 s runs; A = service, B = bare FastAPI\n")  # fmt: skip
    print(report.table(results, GOALS))
    print("\n" + overload.table(results.get("overload", {})))
    for key, summary in results.get("profiles", {}).items():
        print(hotspots.format_summary(key, summary))
    before, after = results["setup"]["cpu_busy_before"], results["setup"]["cpu_busy_after"]
    print(f"machine busy (all CPUs, 1 s, without the bench's servers): {before:.0%} before, {after:.0%} after")
    failing = report.failing(results, GOALS)
    print(f"\nfailing goals: {', '.join(failing) if failing else 'none'}")
    print(f"results: {OUT / 'results.json'}\nplot:    {OUT / 'bench.png'}")
    return 1 if failing and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
