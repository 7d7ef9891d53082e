"""Health checks and the probe routes (IETF draft-inadarei-api-health-check for the JSON bodies).

Each check runs under its own timeout, its result is cached for a short TTL, and concurrent probes
share one in-flight run: any probe rate costs at most one query per check per TTL per worker.
Liveness awaits nothing; readiness fails at once while draining.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from .db import PoolStats, pool_stats
from .errors import problem, problem_response
from .resilience import Dependency
from .schema import SchemaGuard
from .settings import HealthSettings
from .shutdown import Lifecycle

if TYPE_CHECKING:
    from .state import State

Status = Literal["pass", "warn", "fail"]
HEALTH_JSON = "application/health+json"
_RANK: dict[Status, int] = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class Result:
    status: Status
    observed_value: float | None = None
    observed_unit: str | None = None
    output: str | None = None
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))


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
    def __init__(
        self, checks: list[Check], *, timeout: float, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.checks = checks
        self.timeout = timeout
        self.ttl = ttl
        self.clock = clock

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
            result = Result("warn", result.observed_value, result.observed_unit, result.output, result.time)
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
        if _RANK[result.status] > _RANK[worst]:
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


def schema_check(guard: SchemaGuard, *, critical: bool) -> Check:
    """Fails while the database is behind the migrations this code ships (see schema.py)."""

    async def run() -> Result:
        reason = await guard.pending()
        return Result("pass") if reason is None else Result("fail", output=reason)

    return Check("database:schema", "datastore", critical, run)


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


class HealthResponse(Response):
    media_type = HEALTH_JSON


def _json(body: dict[str, Any], status_code: int, media_type: str = HEALTH_JSON) -> Response:
    return Response(
        orjson.dumps(body), status_code=status_code, media_type=media_type, headers={"Cache-Control": "no-store"}
    )


def _ietf(results: dict[str, tuple[Check, Result]]) -> dict[str, list[dict[str, Any]]]:
    checks: dict[str, list[dict[str, Any]]] = {}
    for name, (check, result) in results.items():
        entry: dict[str, Any] = {"componentType": check.component_type, "status": result.status, "time": result.time}
        if result.observed_value is not None:
            entry["observedValue"] = result.observed_value
            entry["observedUnit"] = result.observed_unit
        if result.output:
            entry["output"] = result.output
        checks[name] = [entry]
    return checks


def probe_paths(cfg: HealthSettings) -> frozenset[str]:
    return frozenset(f"{cfg.path_prefix}{suffix}" for suffix in ("", "/live", "/ready", "/startup", "/detailed"))


def build_router(cfg: HealthSettings, lifecycle: Lifecycle, version: str) -> APIRouter:
    """The probe routes. Liveness and startup read only ``lifecycle``; the others read the checks."""
    router = APIRouter(prefix=cfg.path_prefix, tags=["health"])
    token = cfg.token.get_secret_value().encode() if cfg.token else None
    unavailable: dict[int | str, dict[str, Any]] = {503: {"description": "Not ready, draining, or failing"}}
    health_json: dict[int | str, dict[str, Any]] = {
        status: {"description": description, "content": {HEALTH_JSON: {"schema": {"type": "object"}}}}
        for status, description in ((200, "Passing or warning"), (503, "Failing or draining"))
    }

    @router.get("/live", include_in_schema=True)
    async def live() -> Response:
        return _json({"status": "pass"}, 200, "application/json")

    @router.get("/startup", responses=unavailable)
    async def startup() -> Response:
        if lifecycle.started:
            return _json({"status": "pass"}, 200, "application/json")
        return _json({"status": "fail", "output": "starting"}, 503, "application/json")

    @router.get("/ready", responses=unavailable)
    async def ready(request: Request) -> Response:
        if lifecycle.draining:
            return _json({"status": "fail", "output": "draining"}, 503, "application/json")
        if not lifecycle.started:
            return _json({"status": "fail", "output": "starting"}, 503, "application/json")
        state: State = request.state.state
        results = await state.health.results(critical_only=True)
        failing = [
            f"{name} ({result.output})" if result.output else name
            for name, (_check, result) in results.items()
            if result.status == "fail"
        ]
        if failing:
            return _json({"status": "fail", "output": f"failing: {'; '.join(failing)}"}, 503, "application/json")
        return _json({"status": "pass"}, 200, "application/json")

    @router.get("", response_class=HealthResponse, responses=health_json)
    async def summary(request: Request) -> Response:
        state: State = request.state.state
        status = "fail" if lifecycle.draining else overall(await state.health.results())
        body = {"status": status, "version": version, "uptime_seconds": round(lifecycle.uptime_seconds, 1)}
        return _json(body, 503 if status == "fail" else 200)

    @router.get(
        "/detailed",
        response_class=HealthResponse,
        responses={**health_json, 401: problem_response("Missing or wrong bearer token")},
    )
    async def detailed(request: Request) -> Response:
        if token is not None and not _authorised(request, token):
            return problem(401, "A valid bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
        state: State = request.state.state
        results = await state.health.results()
        checks = _ietf(results)
        status = overall(results)
        for guard in state.guards:
            entry = _breaker_entry(guard)
            checks[f"{guard.name}:circuitBreaker"] = [entry]
            status = max(status, entry["status"], key=_RANK.__getitem__)
        pool = pool_stats(state.engine)
        if pool is not None:
            checks["database:connections"] = [_pool_entry(pool)]
        if lifecycle.draining:
            status = "fail"
        body = {
            "status": status,
            "version": version,
            "serviceId": state.settings.service.name,
            "uptime_seconds": round(lifecycle.uptime_seconds, 1),
            "checks": checks,
        }
        return _json(body, 503 if status == "fail" else 200)

    return router


def _breaker_entry(guard: Dependency) -> dict[str, Any]:
    snapshot = guard.breaker.snapshot()
    healthy = snapshot["state"] in ("closed", "disabled")
    status: Status = "pass" if healthy else "fail" if guard.critical else "warn"
    return {"componentType": "component", "status": status, "observedValue": snapshot["state"], **snapshot}


def _pool_entry(pool: PoolStats) -> dict[str, Any]:
    return {
        "componentType": "datastore",
        "status": "pass",
        "observedValue": pool.checked_out,
        "observedUnit": "connections",
        "size": pool.size,
        "overflow": pool.overflow,
        "capacity": pool.capacity,
    }


def _authorised(request: Request, token: bytes) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token)
