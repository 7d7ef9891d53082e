"""Failure tests run the service as it runs in production: gunicorn with uvicorn workers, as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.package_name }} import features
from tests.servers import ServerHandle

PROJECT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gunicorn:
    process: subprocess.Popen[bytes]
    url: str
    management: str  # the management port's base URL: /metrics, /admin, /health/detailed
    log: Path
    metrics_dir: Path

    def records(self) -> list[dict[str, object]]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def messages(self) -> list[str]:
        return [str(record.get("message")) for record in self.records()]

    def worker_pids(self) -> set[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in children.read_text().split()} if children.exists() else set()


@contextmanager
def gunicorn(tmp_path: Path, *, workers: int = 2, **env: str) -> Iterator[Gunicorn]:
    """Serve the app and its test routes with ``gunicorn -c gunicorn.conf.py``; returns once liveness answers."""
    port, management_port = free_port(), free_port()
    metrics_dir = tmp_path / "metrics"
    log = tmp_path / "gunicorn.log"
    environment = {
        **{k: v for k, v in os.environ.items() if k not in features.variables() and not k.startswith("PYTEST")},
        "PORT": str(port),
        "MANAGEMENT_PORT": str(management_port),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "tests.routes:create_test_app()"],
            cwd=PROJECT, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Gunicorn(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{management_port}", log, metrics_dir)
    try:
        _wait_live(server)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):  # everything already exited
            os.killpg(process.pid, signal.SIGKILL)  # the master and every worker: none outlives the test
        process.wait(10)


def _wait_live(server: Gunicorn, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.process.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"gunicorn did not answer within {timeout}s:\n{server.log.read_text()[-3000:]}")


@pytest.fixture(autouse=True)
def servers_restored(postgres: ServerHandle) -> Iterator[None]:
    """Whatever a test did to the server, the next one finds it running."""
    yield
    postgres.resume()
    postgres.start()
