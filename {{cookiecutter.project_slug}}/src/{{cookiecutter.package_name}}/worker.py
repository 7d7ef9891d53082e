"""The gunicorn worker: uvicorn's, made to honour gunicorn's graceful timeout and to outlive no master.

The uvicorn-worker package does not pass ``graceful_timeout`` on, so uvicorn would wait for in-flight
requests without limit and gunicorn would SIGKILL the worker mid-close. This worker gives in-flight
requests ``GRACEFUL_TIMEOUT - SHUTDOWN_CLOSE_SECONDS``, cancels what is left (uvicorn logs how many),
and keeps the rest of the budget for the lifespan to close what it opened.

gunicorn's own workers stop when their master dies (SIGKILL, the OOM killer); uvicorn's never look, and an
orphan would go on holding the port and its connections. This one checks its parent every second and then
shuts down as on SIGTERM.
"""

from __future__ import annotations

import os
import resource
import signal
from typing import Any

from uvicorn_worker import UvicornWorker

from .protocol import bounded_protocol
from .settings import ServerSettings


class Worker(UvicornWorker):  # type: ignore[misc]
    CONFIG_KWARGS = {"loop": "auto", "http": "auto", "lifespan": "on"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        server = ServerSettings()
        self.config.timeout_graceful_shutdown = max(1.0, server.drain_seconds)
        self.config.timeout_notify = min(self.timeout, 1.0)  # the heartbeat, and the parent check with it
        self.config.http = bounded_protocol(server)
        self.config.limit_concurrency = server.limit_concurrency
        # Each connection is a file: the soft limit (often 1,024) would run out long before LIMIT_CONCURRENCY.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # never unlimited on Linux
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.orphaned = False

    async def callback_notify(self) -> None:
        if os.getppid() != self.ppid and not self.orphaned:
            self.orphaned = True
            self.log.warning("the gunicorn master %s is gone: shutting down", self.ppid)
            os.kill(os.getpid(), signal.SIGTERM)
        self.notify()
