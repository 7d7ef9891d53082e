"""Happy-path cost of one dependency guard (breaker + retry + bulkhead + deadline + its metrics), on uvloop.

Times ``await guard.call(noop, idempotent=True)`` inside ``deadline.within(10)`` against ``await noop()``,
interleaved, and prints the median difference per call in nanoseconds as JSON, with a rough breakdown by
part. Runs in the baked project's venv (``bench/run.py`` starts it); ``--multiprocess`` sets
``PROMETHEUS_MULTIPROC_DIR`` first, as gunicorn does, so metric updates go to mmap'ed files as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def noop() -> None:
    return None


async def _loop_time(n: int, step: Callable[[], Awaitable[Any]]) -> int:
    started = time.perf_counter_ns()
    for _ in range(n):
        await step()
    return time.perf_counter_ns() - started


def _sync_time(n: int, step: Callable[[], Any]) -> int:
    started = time.perf_counter_ns()
    for _ in range(n):
        step()
    return time.perf_counter_ns() - started


async def measure(package: str, n: int, repeats: int) -> dict[str, Any]:
    resilience = importlib.import_module(f"{package}.resilience")
    deadline = importlib.import_module(f"{package}.resilience.deadline")
    metrics = importlib.import_module(f"{package}.metrics").Metrics()
    cfg = importlib.import_module(f"{package}.settings").DbResilienceSettings()
    if hasattr(resilience, "Guard"):
        errors = importlib.import_module(f"{package}.db").ERRORS
        guard = resilience.Guard("database", cfg, errors, metrics.guard("database"), call_timeout_seconds=5.0)
    else:  # a template commit from before the guards were named so (make bench --ref)
        guard = resilience.Dependency("database", cfg, metrics, call_timeout_seconds=5.0)

    async def guarded() -> None:
        await guard.call(noop, idempotent=True)

    def breaker() -> None:
        guard.breaker.before_call()
        guard.breaker.on_success(0.001)

    parts: dict[str, Callable[[], Any]] = {
        "breaker before_call+on_success": breaker,
        "retry budget on_call": guard.budget.on_call,
        "deadline.check": deadline.check,
        "clock() x2": lambda: (guard.clock(), guard.clock()),
    }
    # Private or recent parts: the breakdown is a hint, not the goal, and --ref may bench an older service.
    if hasattr(guard.bulkhead, "try_acquire"):
        parts["bulkhead try_acquire+release"] = lambda: (guard.bulkhead.try_acquire(), guard.bulkhead.release())
    latency = getattr(guard, "_latency", None)
    if latency is not None:
        parts["latency histogram observe"] = lambda: latency.observe(0.001)

    bare: list[float] = []
    wrapped: list[float] = []
    diffs: list[float] = []
    with deadline.within(3600):
        await _loop_time(n // 10, guarded)  # warm-up
        for _ in range(repeats):
            b = await _loop_time(n, noop) / n
            w = await _loop_time(n, guarded) / n
            bare.append(b)
            wrapped.append(w)
            diffs.append(w - b)
        breakdown: dict[str, float] = {}
        for name, step in parts.items():
            breakdown[name] = statistics.median([_sync_time(n, step) / n for _ in range(3)])
    return {
        "iterations": n,
        "repeats": repeats,
        "bare_ns": round(statistics.median(bare), 1),
        "guarded_ns": round(statistics.median(wrapped), 1),
        "overhead_ns": round(statistics.median(diffs), 1),
        "breakdown_ns": {name: round(value, 1) for name, value in breakdown.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", required=True)
    parser.add_argument("--iterations", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--multiprocess", action="store_true")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="bench-metrics-") if args.multiprocess else None
    if directory is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # before anything imports prometheus_client
    try:
        import uvloop  # installed with uvicorn[standard]; the service's workers run on it

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(measure(args.package, args.iterations, args.repeats))
        result["loop"] = "uvloop" if loop_factory is not None else "asyncio"
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    result["multiprocess"] = args.multiprocess
    print(json.dumps(result))


if __name__ == "__main__":
    main()
