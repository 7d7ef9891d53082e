"""Real PostgreSQL and Redis servers for tests, behind one `ServerHandle` interface.

`postgres_server()` and `redis_server()` pick a backend once per call:
- a reachable Docker API (Docker engine, or podman's socket via DOCKER_HOST): testcontainers, images from
  POSTGRES_IMAGE / REDIS_IMAGE;
- otherwise the local binaries (initdb + postgres, redis-server) on free ports in a temporary directory;
- otherwise `pytest.skip`, or `pytest.fail` when REQUIRE_SERVICES=1.
TEST_SERVERS=docker|local forces one backend. Fixtures in tests/conftest.py own the handles:

    @pytest.fixture(scope="session")
    def postgres() -> Iterator[ServerHandle]:
        server = postgres_server()
        yield server
        server.close()

`url` stays the same across `stop()`/`start()`: local servers reuse their port, containers bind a fixed host
port. PostgreSQL (user postgres, password postgres, database `app`; `admin_url` names database `postgres`)
keeps committed data across a stop, which is a crash (SIGQUIT, as `pg_ctl stop -m immediate`; SIGKILL for
Redis and containers). Redis runs without persistence, so a stop loses its keys, as a crashed cache would.
`pause()` freezes the server (SIGSTOP to every process of it, or `docker pause`): connects and queries hang.
Handles are synchronous; from async tests call them through `asyncio.to_thread`. `close()` is registered with
atexit, so a run that ends without teardown leaves no server behind (a SIGKILLed run still can).
"""

from __future__ import annotations

import atexit
import functools
import gc
import importlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import pytest

Backend = Literal["docker", "local", "skip", "fail"]
PASSWORD = "pg-test-secret-7d1c"  # a throwaway test server; the URL carries it so masking tests have a secret
HOW_TO_GET_ONE = (
    "install PostgreSQL and Redis server binaries (initdb, postgres, redis-server), "
    "or start a Docker engine / podman socket (DOCKER_HOST)"
)


class ServerHandle(Protocol):
    @property
    def url(self) -> str: ...
    def stop(self) -> None: ...  # abrupt, like a crash
    def start(self) -> None: ...  # same url, same data (PostgreSQL)
    def pause(self) -> None: ...  # the server hangs: connections open, nothing answers
    def resume(self) -> None: ...
    def close(self) -> None: ...  # remove everything; idempotent


def select_backend(*, docker: bool, local: bool, forced: str | None = None, require: bool = False) -> Backend:
    """Docker first, then local binaries; `forced` (TEST_SERVERS) narrows the choice to one of them."""
    if forced not in (None, "", "docker", "local"):
        raise ValueError(f"TEST_SERVERS must be 'docker' or 'local', not {forced!r}")
    if docker and forced != "local":
        return "docker"
    if local and forced != "docker":
        return "local"
    return "fail" if require else "skip"


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


@dataclass(frozen=True)
class LocalBinaries:
    postgres_bindir: Path | None
    redis_server: Path | None


@functools.cache
def local_binaries() -> LocalBinaries:
    """Find a PostgreSQL bindir (PATH, pg_config --bindir, /usr/lib/postgresql/*/bin newest first) and redis-server."""
    candidates: list[Path] = []
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates += [Path(out.stdout.strip())] if out.returncode == 0 else []
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    bindir = next((d for d in candidates if (d / "initdb").exists() and (d / "postgres").exists()), None)
    if bindir is not None and os.geteuid() == 0 and _postgres_ids() is None:
        bindir = None  # PostgreSQL refuses to run as root, and there is no `postgres` user to run it as
    redis = shutil.which("redis-server")
    return LocalBinaries(bindir, Path(redis) if redis else None)


def postgres_server() -> ServerHandle:
    backend = _choose("PostgreSQL", local_binaries().postgres_bindir is not None)
    if backend == "docker":
        return ContainerPostgres()
    bindir = local_binaries().postgres_bindir
    assert bindir is not None  # narrowed by _choose
    return LocalPostgres(bindir)


def redis_server() -> ServerHandle:
    backend = _choose("Redis", local_binaries().redis_server is not None)
    if backend == "docker":
        return ContainerRedis()
    binary = local_binaries().redis_server
    assert binary is not None  # narrowed by _choose
    return LocalRedis(binary)


def _choose(kind: str, local: bool) -> Literal["docker", "local"]:
    forced = os.environ.get("TEST_SERVERS") or None
    backend = select_backend(
        docker=forced != "local" and docker_available(),
        local=local,
        forced=forced,
        require=os.environ.get("REQUIRE_SERVICES") == "1",
    )
    if backend in ("docker", "local"):
        return backend
    reason = f"no {kind} server for tests (TEST_SERVERS={forced or 'unset'}): {HOW_TO_GET_ONE}"
    if backend == "fail":
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


# --- local processes ---------------------------------------------------------------------------------------


class _LocalServer:
    """A server process on a fixed free port; subclasses give the command, stop signal and readiness check."""

    stop_signal = signal.SIGKILL

    def __init__(self, kind: str) -> None:
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"test-{kind}-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        atexit.register(self.close)  # no orphans, even when a fixture's teardown never runs

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def popen_user(self) -> dict[str, Any]:
        return {}

    def start(self) -> None:
        if self._proc is not None:
            return
        # Same process group as the tests (no start_new_session): killing the test run's group takes it down too.
        with open(self.dir / "server.log", "ab") as log:
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir, **self.popen_user(),
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.ready():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_tail = (self.dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{type(self).__name__} did not become ready on port {self.port}:\n{log_tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._proc is None:
            return
        self.resume()
        proc, self._proc = self._proc, None
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_all(_process_tree(proc.pid), signal.SIGKILL)
            proc.wait()

    def pause(self) -> None:
        if self._proc is None or self._paused:
            return
        os.kill(self._proc.pid, signal.SIGSTOP)  # the parent first, so it forks no new children meanwhile
        _signal_all(_process_tree(self._proc.pid), signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self._proc is not None and self._paused:
            _signal_all(_process_tree(self._proc.pid), signal.SIGCONT)
        self._paused = False

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        atexit.unregister(self.close)


class LocalPostgres(_LocalServer):
    stop_signal = signal.SIGQUIT  # what `pg_ctl stop -m immediate` sends: no checkpoint, crash recovery on start

    def __init__(self, bindir: Path) -> None:
        super().__init__("postgres")
        self.bindir = bindir
        shutil.copytree(_template_datadir(bindir), self.dir / "data", symlinks=True)
        _give_to_postgres(self.dir)
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/app"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.dir),
            "max_connections": "200",
            "shared_buffers": "32MB",
            "fsync": "off",  # a commit still write()s its WAL, so committed rows survive stop() (a process crash)
            "full_page_writes": "off",
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        return [str(self.bindir / "postgres"), "-D", str(self.dir / "data"), "-p", str(self.port), *options]

    def ready(self) -> bool:
        # pg_ctl's own check: postmaster.pid holds our pid and, on its 8th line, "ready" once connections are accepted
        try:
            lines = (self.dir / "data" / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return self._proc is not None and len(lines) >= 8 and lines[0] == str(self._proc.pid) and "ready" in lines[7]

    def popen_user(self) -> dict[str, Any]:
        return _as_postgres()


class LocalRedis(_LocalServer):
    def __init__(self, binary: Path) -> None:
        super().__init__("redis")
        self.binary = binary
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.dir), "--daemonize", "no", "--protected-mode", "no",
        ]  # fmt: skip

    def ready(self) -> bool:
        return _redis_ping("127.0.0.1", self.port)


@functools.cache
def _template_datadir(bindir: Path) -> Path:
    """initdb once per session (about a second) with database `app`; each LocalPostgres copies the result."""
    base = Path(tempfile.mkdtemp(prefix="test-postgres-template-"))
    atexit.register(shutil.rmtree, base, True)
    (base / "pwfile").write_text(PASSWORD)
    _give_to_postgres(base)
    data = base / "data"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={base / 'pwfile'}"]
    _run([*initdb, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C"], base)
    _run([str(bindir / "postgres"), "--single", "-D", str(data), "-F", "postgres"], base, b"CREATE DATABASE app;\n")
    return data


def _run(cmd: list[str], cwd: Path, stdin: bytes | None = None) -> None:
    out = subprocess.run(cmd, input=stdin, capture_output=True, cwd=cwd, check=False, **_as_postgres())
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({out.returncode}):\n{(out.stdout + out.stderr).decode()[-2000:]}")


def _postgres_ids() -> tuple[int, int] | None:
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        return None
    return user.pw_uid, user.pw_gid


def _as_postgres() -> dict[str, Any]:
    """Popen arguments that, as root, run PostgreSQL as the `postgres` user: it refuses to run as root."""
    ids = _postgres_ids() if os.geteuid() == 0 else None
    return {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}


def _give_to_postgres(root: Path) -> None:
    """As root, hand a temporary directory (mkdtemp: 0700, root's) to the `postgres` user."""
    if os.geteuid() == 0 and (ids := _postgres_ids()) is not None:
        for path in [root, *root.rglob("*")]:
            os.chown(path, *ids, follow_symlinks=False)


def _process_tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc (PostgreSQL backends each lead their own process group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process exited while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, i = [root], 0
    while i < len(tree):
        tree += children.get(tree[i], [])
        i += 1
    return tree


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- containers --------------------------------------------------------------------------------------------


class _ContainerServer:
    """A testcontainers container with its port bound to a fixed free host port, so `url` survives a restart."""

    def __init__(self, container: Any, inner_port: int) -> None:
        self.inner_port = inner_port
        self.container = container.with_bind_ports(inner_port, _free_port())
        self.container.start()
        self._running, self._paused, self._closed = True, False, False
        self.address = self._read_address()
        atexit.register(self.close)

    def _read_address(self) -> tuple[str, int]:
        # Read after every start (the mapping is fixed here, but an engine may still remap), never while paused:
        # testcontainers waits for the "running" status first.
        return self.container.get_container_host_ip(), int(self.container.get_exposed_port(self.inner_port))

    def ready(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        if not self._running:
            return
        self.resume()
        docker_container = self.container.get_wrapped_container()
        docker_container.kill()  # SIGKILL: a crash, not a clean shutdown
        docker_container.wait(timeout=30)
        self._running = False

    def start(self) -> None:
        if self._running:
            return
        self.container.get_wrapped_container().start()
        self._running = True
        self.address = self._read_address()
        deadline = time.monotonic() + 60
        while not self.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} did not become ready after a restart")
            time.sleep(0.1)

    def pause(self) -> None:
        if self._running and not self._paused:
            self.container.get_wrapped_container().pause()
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self.container.get_wrapped_container().unpause()
            self._paused = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.resume()
        finally:
            self.container.stop()  # removes the container and its volumes


class ContainerPostgres(_ContainerServer):
    def __init__(self) -> None:
        image = os.environ.get("POSTGRES_IMAGE", "postgres:16-alpine")
        module = _testcontainers("postgres")
        container = module.PostgresContainer(image, username="postgres", password=PASSWORD, dbname="app", driver=None)
        super().__init__(container, 5432)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"postgresql://postgres:{PASSWORD}@{host}:{port}/app"

    @property
    def admin_url(self) -> str:
        return self.url.rpartition("/")[0] + "/postgres"

    def ready(self) -> bool:
        check = f"PGPASSWORD={PASSWORD} psql -h 127.0.0.1 -U postgres -d app -c 'select 1'"
        return int(self.container.exec(["sh", "-c", check]).exit_code) == 0


class ContainerRedis(_ContainerServer):
    def __init__(self) -> None:
        image = os.environ.get("REDIS_IMAGE", "redis:7-alpine")
        super().__init__(_testcontainers("redis").RedisContainer(image), 6379)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"redis://{host}:{port}/0"

    def ready(self) -> bool:
        return _redis_ping(*self.address)


def _testcontainers(name: str) -> Any:
    """testcontainers.community.<name> (4.10+), else the older testcontainers.<name>; found sockets are exported."""
    if (host := docker_host()) is not None:
        os.environ.setdefault("DOCKER_HOST", host)
    try:
        return importlib.import_module(f"testcontainers.community.{name}")
    except ImportError:
        return importlib.import_module(f"testcontainers.{name}")
