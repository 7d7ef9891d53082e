"""A of the no-op route: the baked service exactly as generated, plus ``GET /bench/noop``.

The route is added after ``create_app()`` built everything, so every middleware (request id and access
log, metrics, deadline) runs around it, and moved to the place in the route table that B's identical route
has: the difference is the middleware stack's cost, not the router's walk over the service's other routes (a
cost the service's own routes pay, and the other rows measure).

    PYTHONPATH=<template root> gunicorn -c gunicorn.conf.py 'bench.app_with_noop:create()'

(a positional app argument takes precedence over ``wsgi_app`` in the config file).
"""

from __future__ import annotations

import importlib
import os

from fastapi import FastAPI


def create() -> FastAPI:
    package = importlib.import_module(f"{os.environ['BENCH_PACKAGE']}.app")
    app: FastAPI = package.create_app()

    @app.get("/bench/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    # B's position: right after FastAPI's own documentation routes, before the service's included routers (which
    # the router tries one by one: each costs a prefix match and a walk over its routes).
    own = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    builtin = sum(getattr(route, "path", None) in own for route in app.router.routes)
    app.router.routes.insert(builtin, app.router.routes.pop())
    return app
