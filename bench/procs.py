"""gunicorn processes for the bench: started pinned to CPU 0, waited for, measured, and always stopped."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_CPU = "0"
LOAD_CPU = "1"


def pinned(cmd: list[str], cpu: str) -> list[str]:
    """``cmd`` under ``taskset -c cpu`` when taskset exists and the machine has that CPU."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > int(cpu):
        return ["taskset", "-c", cpu, *cmd]
    return cmd


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status(port: int, path: str, timeout: float = 2.0) -> int | None:
    """The status of ``GET path`` on a fresh connection; None when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def cpu_busy(seconds: float = 1.0) -> float:
    """The share of all CPUs busy over ``seconds`` (from /proc/stat): other work on the machine skews a bench."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started_at: float
    ready_seconds: float = 0.0
    management_port: int | None = None  # the service's /metrics (the bare app has none)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        if len(children) != 1:
            raise RuntimeError(f"{self.name}: expected one gunicorn worker, found {children}")
        return int(children[0])

    def cpu_seconds(self) -> float:
        """User plus system CPU time the worker has used so far."""
        fields = Path(f"/proc/{self.worker_pid()}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.worker_pid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def truncate_log(self) -> None:
        """The access log grows by the request; a bench run writes hundreds of MB without this."""
        os.truncate(self.log, 0)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM (graceful, as Kubernetes does), SIGKILL to the whole group when it takes too long."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start(
    name: str,
    cmd: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log: Path,
    port: int,
    ready_path: str,
    management_port: int | None = None,
) -> Server:
    """Spawn ``cmd`` pinned to the server CPU and return once ``ready_path`` answers 200.

    ``ready_seconds`` is spawn to first 200, polled every 10 ms on fresh connections.
    """
    with log.open("ab") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            pinned(cmd, SERVER_CPU), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,  # its own group: stop() can take master and worker
        )  # fmt: skip
    server = Server(name, process, port, log, started, management_port=management_port)
    deadline = started + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        if status(port, ready_path, timeout=5.0) == 200:
            server.ready_seconds = time.monotonic() - started
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name}: {ready_path} did not answer 200 within 60s:\n{server.log_tail()}")
        time.sleep(0.01)
