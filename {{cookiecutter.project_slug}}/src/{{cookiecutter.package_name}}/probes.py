"""The probe routes (IETF draft-inadarei-api-health-check for the JSON bodies).

Liveness awaits nothing; startup reads the lifecycle; readiness fails at once while draining, then runs the
critical checks (``checks.py``). These answer on the API port, the one they test. ``/health/detailed`` adds every
guard's breaker and is token-protected once a token is set; it answers on the management port only
(``management.py``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from .auth import bearer_matches
from .checks import RANK, Check, HealthChecks, Result, Status, overall
from .errors import problem, problem_response
from .resilience import Guard, Guards
from .settings import HealthSettings
from .shutdown import Lifecycle

HEALTH_JSON = "application/health+json"


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
        if result.details:
            entry.update(result.details)
        checks[name] = [entry]
    return checks


def probe_paths(cfg: HealthSettings) -> frozenset[str]:
    """The probes' paths, which the API port answers past every middleware."""
    return frozenset(f"{cfg.path_prefix}{suffix}" for suffix in ("", "/live", "/ready", "/startup"))


HEALTH_JSON_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {HEALTH_JSON: {"schema": {"type": "object"}}}}
    for status, description in ((200, "Passing or warning"), (503, "Failing or draining"))
}


def build_router(cfg: HealthSettings, lifecycle: Lifecycle, checks: HealthChecks, *, version: str) -> APIRouter:
    """The probe routes. Liveness and startup read only ``lifecycle``; the others read ``checks`` too."""
    router = APIRouter(prefix=cfg.path_prefix, tags=["health"])
    unavailable: dict[int | str, dict[str, Any]] = {503: {"description": "Not ready, draining, or failing"}}

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
        results = await checks.results(critical_only=True)
        failing = [
            f"{name} ({result.output})" if result.output else name
            for name, (_check, result) in results.items()
            if result.status == "fail"
        ]
        if failing:
            return _json({"status": "fail", "output": f"failing: {'; '.join(failing)}"}, 503, "application/json")
        return _json({"status": "pass"}, 200, "application/json")

    @router.get("", response_class=HealthResponse, responses=HEALTH_JSON_RESPONSES)
    async def summary() -> Response:
        status = "fail" if lifecycle.draining else overall(await checks.results())
        body = {"status": status, "version": version, "uptime_seconds": round(lifecycle.uptime_seconds, 1)}
        return _json(body, 503 if status == "fail" else 200)

    return router


def build_detailed_router(
    cfg: HealthSettings, lifecycle: Lifecycle, checks: HealthChecks, guards: Guards, *, service: str, version: str
) -> APIRouter:
    """``/health/detailed``: every check and every guard's breaker, behind ``HEALTH_TOKEN`` once it is set."""
    router = APIRouter(prefix=cfg.path_prefix, tags=["health"])
    token = cfg.token.get_secret_value().encode() if cfg.token else None

    @router.get(
        "/detailed",
        response_class=HealthResponse,
        responses={**HEALTH_JSON_RESPONSES, 401: problem_response("Missing or wrong bearer token")},
    )
    async def detailed(request: Request) -> Response:
        if token is not None and not bearer_matches(request.headers.get("authorization"), token):
            return problem(401, "A valid bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
        results = await checks.results()
        entries = _ietf(results)
        status = overall(results)
        for guard in guards:
            entry = _breaker_entry(guard)
            entries[f"{guard.name}:circuitBreaker"] = [entry]
            status = max(status, entry["status"], key=RANK.__getitem__)
        if lifecycle.draining:
            status = "fail"
        body = {
            "status": status,
            "version": version,
            "serviceId": service,
            "uptime_seconds": round(lifecycle.uptime_seconds, 1),
            "checks": entries,
        }
        return _json(body, 503 if status == "fail" else 200)

    return router


def _breaker_entry(guard: Guard) -> dict[str, Any]:
    snapshot = guard.breaker.snapshot()
    healthy = snapshot["state"] in ("closed", "disabled")
    status: Status = "pass" if healthy else "fail" if guard.critical else "warn"
    return {"componentType": "component", "status": status, "observedValue": snapshot["state"], **snapshot}
