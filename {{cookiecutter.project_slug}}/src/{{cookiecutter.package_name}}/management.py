"""The management port: ``/metrics``, ``/admin`` and ``/health/detailed``, for Prometheus and operators only.

Every route count, pool and breaker state is for the cluster's monitoring, not for whoever reaches the API, so
these routes answer on a port of their own (``MANAGEMENT_PORT``), which the same process listens on beside
``PORT`` (gunicorn binds both; so does ``python -m {{ cookiecutter.package_name }} serve``), which no Service
exposes and which the NetworkPolicy opens to the monitoring namespace alone. The request middleware hands each
request that came in on it (ASGI's ``scope["server"]``) to this app; the API's app has none of these routes, so
on the API port they are 404 like any path that does not exist. The probes stay on the API port: a probe must
test the port that serves traffic.

Like the probes, these requests skip the request middleware: no access line, no request metrics, no deadline.
An operator's breaker command is logged by the admin route itself.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig

from . import admin, errors
from .metrics import Metrics
from .settings import Settings


def build_app(settings: Settings, metrics: Metrics, detailed_health: APIRouter) -> FastAPI:
    """The management routes as an app of their own, without docs; the state is the API's lifespan's."""
    quiet: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(
        title=f"{settings.service.name} management",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=quiet,
    )
    errors.install(app)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    app.include_router(detailed_health)
    if settings.service.admin_token is not None:
        app.include_router(admin.build_router(settings.service.admin_token.get_secret_value()))
    return app
