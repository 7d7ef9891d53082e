"""Health checks: results, per-check timeouts, a short-lived cache and one in-flight run per check.

Each check runs under its own timeout, its result is cached for a short TTL, and concurrent probes share one
in-flight run: any probe rate costs at most one query per check per TTL per worker. A check lives with what it
checks (the database's in ``db.py``, the schema's in ``schema.py``, a part's in its module); the one here reads
the container's memory. The probe routes that read these are ``probes.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "warn", "fail"]
RANK: dict[Status, int] = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class Result:
    status: Status
    observed_value: float | None = None
    observed_unit: str | None = None
    output: str | None = None
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    details: Mapping[str, object] | None = None  # further fields of the check's IETF entry


@dataclass(slots=True)
class Check:
    """One named check; ``run`` returns a Result or raises, and a raise is a failure."""

    name: str  # IETF "component:measurement", e.g. "database:responseTime"
    component_type: str
    critical: bool
    run: Callable[[], Awaitable[Result]]
    cached: tuple[float, Result] | None = None
    in_flight: asyncio.Task[Result] | None = None


class HealthChecks:
    """Every check of the service; the parts add theirs as the lifespan opens them."""

    def __init__(self, *, timeout: float, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.checks: list[Check] = []
        self.timeout = timeout
        self.ttl = ttl
        self.clock = clock

    def add(self, check: Check) -> None:
        self.checks.append(check)

    async def results(self, *, critical_only: bool = False) -> dict[str, tuple[Check, Result]]:
        chosen = [check for check in self.checks if check.critical or not critical_only]
        results = await asyncio.gather(*(self._result(check) for check in chosen))
        return {check.name: (check, result) for check, result in zip(chosen, results, strict=True)}

    async def _result(self, check: Check) -> Result:
        now = self.clock()
        if check.cached is not None and now - check.cached[0] < self.ttl:
            return check.cached[1]
        if check.in_flight is None:
            check.in_flight = asyncio.ensure_future(self._run(check))
        # shield: a probe that gives up must not cancel the run other probes are waiting for.
        return await asyncio.shield(check.in_flight)

    async def _run(self, check: Check) -> Result:
        started = self.clock()
        try:
            async with asyncio.timeout(self.timeout):
                result = await check.run()
        except TimeoutError:
            result = Result("fail", output=f"no answer within {self.timeout:g}s")
        except Exception as exc:
            result = Result("fail", output=_describe(exc))
        if result.status == "fail" and not check.critical:
            result = dataclasses.replace(result, status="warn")
        check.cached = (started, result)
        check.in_flight = None
        return result


def _describe(exc: Exception) -> str:
    # The type and a short message only: a driver's message can quote a connection string.
    text = str(exc).split("\n", 1)[0][:200]
    return f"{type(exc).__name__}: {text}" if "://" not in text else type(exc).__name__


def overall(results: dict[str, tuple[Check, Result]]) -> Status:
    worst: Status = "pass"
    for _check, result in results.values():
        if RANK[result.status] > RANK[worst]:
            worst = result.status
    return worst


async def timed(probe: Callable[[], Awaitable[Any]]) -> Result:
    started = time.perf_counter()
    await probe()
    return Result("pass", round((time.perf_counter() - started) * 1000, 2), "ms")


def memory_check(warn_ratio: float, fail_ratio: float, *, cgroup: Path = Path("/sys/fs/cgroup")) -> Check:
    """The container's memory use against its cgroup limit; without a limit, this process's RSS, always pass."""

    async def run() -> Result:
        usage, limit = _memory(cgroup)
        if limit is None:
            return Result("pass", usage, "bytes")
        ratio = usage / limit
        status: Status = "fail" if ratio >= fail_ratio else "warn" if ratio >= warn_ratio else "pass"
        output = f"{ratio:.0%} of the {limit} byte limit" if status != "pass" else None
        return Result(status, round(ratio * 100, 1), "percent", output)

    return Check("memory:utilization", "system", critical=False, run=run)


def _memory(cgroup: Path) -> tuple[int, int | None]:
    for usage_file, limit_file in (
        ("memory.current", "memory.max"),
        ("memory/memory.usage_in_bytes", "memory/memory.limit_in_bytes"),
    ):
        try:
            usage = int((cgroup / usage_file).read_text())
            raw_limit = (cgroup / limit_file).read_text().strip()
        except (OSError, ValueError):
            continue
        if raw_limit != "max" and int(raw_limit) < 2**60:
            return usage, int(raw_limit)
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE"), None
