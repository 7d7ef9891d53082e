"""gunicorn settings, all from the environment: ``gunicorn -c gunicorn.conf.py`` needs no other argument.

The settings are validated here, in the master, so a bad value stops the process before any worker
starts, with one line naming the variable.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# prometheus_client picks its multiprocess mode when first imported, so the directory is named before
# anything imports it; the master empties it at start so that old workers' files don't linger.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / "{{ cookiecutter.package_name }}-metrics"))

from {{ cookiecutter.package_name }}.features import load_settings
from {{ cookiecutter.package_name }}.observability import logging_config
from {{ cookiecutter.package_name }}.ports import unavailable
from {{ cookiecutter.package_name }}.settings import SettingsError

try:
    _settings = load_settings()
except SettingsError as exc:
    sys.stderr.write(f"invalid configuration:\n{exc}\n")
    sys.exit(2)

_server = _settings.server

wsgi_app = "{{ cookiecutter.package_name }}.app:create_app()"
worker_class = "{{ cookiecutter.package_name }}.worker.Worker"
# The API (and the probes) on PORT; /metrics, /admin and /health/detailed on MANAGEMENT_PORT (management.py).
bind = [f"{_server.host}:{_server.port}", f"{_server.host}:{_server.management_port}"]
workers = _server.workers
graceful_timeout = int(_server.graceful_timeout)
timeout = int(_server.worker_timeout_seconds)
keepalive = int(_server.keepalive_seconds)
max_requests = _server.max_requests
max_requests_jitter = _server.max_requests_jitter
accesslog = None  # the app writes one JSON access line per request
control_socket_disable = True  # gunicorn's control socket lives under $HOME, which a read-only image lacks
logconfig_dict = logging_config(_settings.service.log_level)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
worker_tmp_dir = os.environ.get("WORKER_TMP_DIR") or ("/dev/shm" if Path("/dev/shm").is_dir() else None)  # noqa: S108


def on_starting(server: Any) -> None:
    # A taken port ends the start at once with one line naming its variable, rather than gunicorn's 5 s of retries
    # and its "Can't connect". Not when gunicorn is handed its sockets (a USR2 re-exec, systemd's socket activation).
    if not {"GUNICORN_FD", "LISTEN_FDS"} & os.environ.keys():
        for variable, port in (("PORT", _server.port), ("MANAGEMENT_PORT", _server.management_port)):
            if problem := unavailable(_server.host, port, variable):
                sys.stderr.write(f"{problem}\n")
                sys.exit(1)
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    if _settings.db.is_sqlite:
        # The embedded database has no migration step of its own: the master migrates it once, before any
        # worker opens it. PostgreSQL is migrated by its own step (compose's migrate service, the Job).
        import asyncio

        from {{ cookiecutter.package_name }} import migrations

        asyncio.run(migrations.upgrade(_settings.db))


def post_worker_init(worker: Any) -> None:
    # What is loaded by now (modules, the app) lives as long as the worker: keep it out of the cyclic collector's
    # full passes, which otherwise walk about 120,000 objects, a 50 ms stall every few thousand requests (the
    # p99 of `make bench`'s no-op route falls from about 55 ms to 16 ms).
    gc.freeze()
    # A request allocates hundreds of objects, nearly all freed by reference counting when it ends: a young-
    # generation pass every 10,000 allocations rather than every 700 finds the same garbage at a fraction of the
    # cost (about 2% more creates per second in `make bench`), for a few MB more between passes.
    gc.set_threshold(10_000, 10, 10)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
