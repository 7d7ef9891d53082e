"""The gunicorn worker: uvicorn's, made to honour gunicorn's graceful timeout.

The uvicorn-worker package does not pass ``graceful_timeout`` on, so uvicorn would wait for in-flight
requests without limit and gunicorn would SIGKILL the worker mid-close. This worker gives in-flight
requests ``GRACEFUL_TIMEOUT - SHUTDOWN_CLOSE_SECONDS``, cancels what is left (uvicorn logs how many),
and keeps the rest of the budget for the lifespan to close Redis and the database pool.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

from .settings import ServerSettings


class Worker(UvicornWorker):  # type: ignore[misc]
    CONFIG_KWARGS = {"loop": "auto", "http": "auto", "lifespan": "on"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        server = ServerSettings()
        self.config.timeout_graceful_shutdown = max(1.0, self.cfg.graceful_timeout - server.shutdown_close_seconds)
