"""The commands a developer types first, run as processes on the embedded SQLite: `make run`, `make serve`,
their ends, and a port that is already taken."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.package_name }} import features

PROJECT = Path(__file__).resolve().parents[2]
PACKAGE = "{{ cookiecutter.package_name }}"
# This environment's tools, whatever venv the tests run in: `make run` then installs nothing first.
MAKE = ["make", "--no-print-directory", f"BIN={Path(sys.executable).parent}", "INSTALLED="]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The embedded defaults on a free port, with a SQLite file and a metrics folder of this test's own."""
    (tmp_path / "metrics").mkdir()
    # Not a sub-make of a make that runs the tests: the make here is the one a developer types.
    inherited = {k: v for k, v in os.environ.items() if k not in features.variables() and not k.startswith("MAKE")}
    return {
        **{k: v for k, v in inherited.items() if not k.startswith("PYTEST")},
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }


@pytest.fixture
def taken(env: dict[str, str]) -> Iterator[int]:
    """The port of ``env``, held by a listening socket for the test."""
    port = int(env["PORT"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        yield port


def started(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no answer on /health/live within 60 s"
        try:
            if httpx.get(f"http://127.0.0.1:{env['PORT']}/health/live", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)


def server_of(make: subprocess.Popen[str]) -> int:
    """The server make runs: its only child, since the recipe execs it."""
    (child,) = Path(f"/proc/{make.pid}/task/{make.pid}/children").read_text().split()
    return int(child)


@pytest.mark.parametrize("target", ["run", "serve"])
def test_make_ends_with_the_servers_exit_code_after_sigterm(target: str, env: dict[str, str]) -> None:
    """SIGTERM to the server under `make run` or `make serve` drains it, and make exits 0 without a word of its own."""
    make = started([*MAKE, target], env)
    os.kill(server_of(make), signal.SIGTERM)
    output = make.communicate(timeout=60)[0]
    assert make.returncode == 0, output
    assert "make: ***" not in output


def test_serve_exits_0_after_sigterm(env: dict[str, str]) -> None:
    """The development server drains on SIGTERM and ends with 0, not by the signal (143)."""
    server = started([sys.executable, "-m", PACKAGE, "serve"], env)
    server.send_signal(signal.SIGTERM)
    output = server.communicate(timeout=60)[0]
    assert server.returncode == 0, output


@pytest.mark.parametrize(
    ("command", "host"),
    [
        pytest.param([sys.executable, "-m", PACKAGE, "serve"], "127.0.0.1", id="make-run"),
        pytest.param([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], "127.0.0.1", id="make-serve"),
    ],
)
def test_a_taken_port_is_one_line_naming_it_and_port(
    command: list[str], host: str, env: dict[str, str], taken: int
) -> None:
    """A port already in use stops the server before it starts, exit 1, with one line naming the port and PORT."""
    result = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    expected = f"port {taken} is in use on {host}: stop what listens there, or set PORT to a free port"
    assert result.stderr.strip() == expected
    assert "Errno" not in result.stdout + result.stderr
    assert "Can't connect" not in result.stdout + result.stderr
