"""Real servers for tests behind one `ServerHandle`: PostgreSQL here; the optional parts' tests add theirs.

`postgres_server()` picks a backend once per call (`choose`, shared by every kind of server):
- a reachable Docker API (Docker engine, or podman's socket via DOCKER_HOST): testcontainers, images from
  POSTGRES_IMAGE (and the like);
- otherwise the local binaries (initdb + postgres, ...) on free ports in a temporary directory;
- otherwise `pytest.skip`, or `pytest.fail` when REQUIRE_SERVICES=1.
TEST_SERVERS=containers|local demands one backend (and fails when it is missing); auto, the default, picks.
Fixtures in tests/conftest.py own the handles:

    @pytest.fixture(scope="session")
    def postgres() -> Iterator[ServerHandle]:
        server = postgres_server()
        yield server
        server.close()

The local processes live in tests/servers_local.py, the containers in tests/servers_docker.py.
`url` stays the same across `stop()`/`start()`: local servers reuse their port, containers bind a fixed host
port. PostgreSQL (user postgres, password postgres, database `app`; `admin_url` names database `postgres`)
keeps committed data across a stop, which is a crash (SIGQUIT, as `pg_ctl stop -m immediate`; SIGKILL for
containers).
`pause()` freezes the server (SIGSTOP to every process of it, or `docker pause`): connects and queries hang.
Handles are synchronous; from async tests call them through `asyncio.to_thread`. `close()` is registered with
atexit, so a run that ends without teardown leaves no server behind (a SIGKILLed run still can).
"""

from __future__ import annotations

import functools
import gc
import importlib
import os
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Literal, Protocol

import pytest

from tests.servers_local import LocalPostgres, postgres_ids

Backend = Literal["containers", "local", "skip", "fail"]
CHOICES = ("auto", "containers", "local")
HOW_TO_GET_ONE = "install the server's binaries, or start a Docker engine / podman socket (DOCKER_HOST)"


class ServerHandle(Protocol):
    @property
    def url(self) -> str: ...
    def stop(self) -> None: ...  # abrupt, like a crash
    def start(self) -> None: ...  # same url, same data (PostgreSQL)
    def pause(self) -> None: ...  # the server hangs: connections open, nothing answers
    def resume(self) -> None: ...
    def close(self) -> None: ...  # remove everything; idempotent


def select_backend(*, docker: bool, local: bool, choice: str = "auto", require: bool = False) -> Backend:
    """`auto`: containers when a Docker API answers, else local binaries, else skip (fail when required).

    `containers` or `local` (TEST_SERVERS) demands that backend: a run that asked for one and cannot have it fails
    rather than skipping or quietly using the other.
    """
    if choice not in CHOICES:
        raise ValueError(f"TEST_SERVERS must be one of {', '.join(CHOICES)}, not {choice!r}")
    if docker and choice in ("auto", "containers"):
        return "containers"
    if local and choice in ("auto", "local"):
        return "local"
    return "fail" if require or choice != "auto" else "skip"


@functools.cache
def docker_host() -> str | None:
    """DOCKER_HOST, or the first Docker/podman socket that exists."""
    if host := os.environ.get("DOCKER_HOST"):
        return host
    runtime = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    for path in ("/var/run/docker.sock", f"{runtime}/podman/podman.sock", "/run/podman/podman.sock"):
        if Path(path).exists():
            return f"unix://{path}"
    return None


@functools.cache
def docker_available() -> bool:
    """True when a Docker API answers a ping within two seconds."""
    host = docker_host()
    if host is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the SDK leaks its socket when no daemon answers
        try:
            client = importlib.import_module("docker").DockerClient(base_url=host, timeout=2)
            try:
                answered = bool(client.ping())
            finally:
                client.close()
        except Exception:  # no SDK, no daemon, refused, timed out: all mean "not available"
            answered = False
        gc.collect()  # finalise the leaked socket while its warning is still ignored
    return answered


@functools.cache
def local_postgres_bindir() -> Path | None:
    """Find a PostgreSQL bindir (PATH, pg_config --bindir, /usr/lib/postgresql/*/bin newest first)."""
    candidates: list[Path] = []
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates += [Path(out.stdout.strip())] if out.returncode == 0 else []
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    bindir = next((d for d in candidates if (d / "initdb").exists() and (d / "postgres").exists()), None)
    if bindir is not None and os.geteuid() == 0 and postgres_ids() is None:
        bindir = None  # PostgreSQL refuses to run as root, and there is no `postgres` user to run it as
    return bindir


def postgres_server() -> ServerHandle:
    backend = choose("PostgreSQL (initdb, postgres)", local_postgres_bindir() is not None)
    if backend == "containers":
        from tests.servers_docker import ContainerPostgres

        return ContainerPostgres()
    bindir = local_postgres_bindir()
    assert bindir is not None  # narrowed by _choose
    return LocalPostgres(bindir)


def choose(kind: str, local: bool) -> Literal["containers", "local"]:
    choice = os.environ.get("TEST_SERVERS") or "auto"
    backend = select_backend(
        docker=choice != "local" and docker_available(),
        local=local,
        choice=choice,
        require=os.environ.get("REQUIRE_SERVICES") == "1",
    )
    if backend in ("containers", "local"):
        return backend
    reason = f"no {kind} server for tests (TEST_SERVERS={choice}): {HOW_TO_GET_ONE}"
    if backend == "fail":
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}" if choice == "auto" else reason)
    pytest.skip(reason)
