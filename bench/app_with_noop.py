"""A of the no-op route: the baked service exactly as generated, plus ``GET /bench/noop``.

The route is added after ``create_app()`` built everything, so every middleware (request id and access
log, metrics, deadline) runs around it: the difference to B's identical route is the service's overhead.

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

    return app
