"""Load from many independent clients with ``hey``, and probes asked the way a kubelet asks them.

``hey`` (Debian package ``hey``) runs ``-c`` clients, each capped at ``-q`` requests per second and giving up after
``-t`` seconds, and with ``-o csv`` writes one line per answered request: its time, status and offset. A request
that timed out has no line, so goodput is counted from the lines: 200s answered within the client's timeout. On
two cores the server and the load generator are pinned to different CPUs (``taskset``), or the client's CPU
would show up as the server's.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

SERVER_CPU, LOAD_CPU = "0", "1"


@dataclass(frozen=True)
class Run:
    seconds: float
    timeout: float
    answers: list[tuple[int, float]]  # (status, seconds) per answered request

    def count(self, status: int, *, within: float | None = None) -> int:
        limit = self.timeout if within is None else within
        return sum(1 for code, took in self.answers if code == status and took < limit)

    @property
    def goodput(self) -> float:
        """200s answered within the client's timeout, per second."""
        return self.count(200) / self.seconds

    def percentile(self, status: int, share: float) -> float:
        times = sorted(took for code, took in self.answers if code == status)
        return times[min(len(times) - 1, int(share * len(times)))] if times else float("nan")


def pinned(pid: int, cpus: str) -> None:
    """Pin a process and its threads (and, through inheritance, the children it forks later) to ``cpus``."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        subprocess.run(["taskset", "-a", "-cp", cpus, str(pid)], check=True, capture_output=True)


def hey(url: str, *, clients: int, seconds: float, rate: float | None = None, timeout: float = 1.0) -> Run:
    """``clients`` clients for ``seconds``, each at most ``rate`` requests per second (None: as fast as answered)."""
    binary = shutil.which("hey")
    if binary is None:
        raise RuntimeError("hey is not installed: apt-get install hey")
    command = [binary, "-c", str(clients), "-z", f"{seconds:g}s", "-t", f"{timeout:g}", "-o", "csv"]
    if rate is not None:
        command += ["-q", f"{rate:.3f}"]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", LOAD_CPU, *command]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rows = csv.DictReader(io.StringIO(out))
    answers = [(int(row["status-code"]), float(row["response-time"])) for row in rows]
    return Run(seconds, timeout, answers)


@dataclass
class Prober:
    """Every ``interval``, a GET of each path on a new connection with a 1 s timeout, as a kubelet probes."""

    base: str
    paths: Sequence[str]
    interval: float = 1.0
    timeout: float = 1.0
    results: list[tuple[str, int, float, httpx.Headers | None]] = field(default_factory=list)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for path in self.paths:
                started = time.monotonic()
                try:
                    answer = httpx.get(self.base + path, timeout=self.timeout)
                    self.results.append((path, answer.status_code, time.monotonic() - started, answer.headers))
                except httpx.TransportError:
                    self.results.append((path, 0, time.monotonic() - started, None))
            stop.wait(self.interval)

    @contextmanager
    def running(self) -> Iterator[Prober]:
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(5)

    def failed(self, path: str) -> list[tuple[int, float]]:
        return [(code, took) for p, code, took, _ in self.results if p == path and (code != 200 or took >= 1.0)]
