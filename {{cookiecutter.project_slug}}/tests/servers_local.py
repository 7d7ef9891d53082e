"""Servers as local processes on free ports, for tests/servers.py: PostgreSQL here, and the base of the others."""

from __future__ import annotations

import atexit
import functools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

PASSWORD = "pg-test-secret-7d1c"  # a throwaway test server; the URL carries it so masking tests have a secret


class LocalServer:
    """A server process on a fixed free port; subclasses give the command, stop signal and readiness check."""

    stop_signal = signal.SIGKILL

    def __init__(self, kind: str) -> None:
        self.port = free_port()
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


class LocalPostgres(LocalServer):
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


def postgres_ids() -> tuple[int, int] | None:
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        return None
    return user.pw_uid, user.pw_gid


def _as_postgres() -> dict[str, Any]:
    """Popen arguments that, as root, run PostgreSQL as the `postgres` user: it refuses to run as root."""
    ids = postgres_ids() if os.geteuid() == 0 else None
    return {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}


def _give_to_postgres(root: Path) -> None:
    """As root, hand a temporary directory (mkdtemp: 0700, root's) to the `postgres` user."""
    if os.geteuid() == 0 and (ids := postgres_ids()) is not None:
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
