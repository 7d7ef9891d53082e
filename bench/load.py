"""Load: wrk at a fixed connection count for throughput, and a paced asyncio loop for probes per second."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from procs import LOAD_CPU, pinned

# wrk calls done() once at the end: one line the bench can parse, whatever wrk's own summary looks like.
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    path: str = "/"
    body: str | None = None
    paths: tuple[str, ...] = ()  # when set, each request picks one at random (wrk's path is ignored)

    def lua(self) -> str:
        lines = [f'wrk.method = "{self.method}"']
        if self.body is not None:
            lines += [f"wrk.body = [[{self.body}]]", 'wrk.headers["Content-Type"] = "application/json"']
        if self.paths:
            listed = ", ".join(f'"{path}"' for path in self.paths)
            lines += [
                f"local paths = {{{listed}}}",
                "request = function() return wrk.format(nil, paths[math.random(#paths)]) end",
            ]
        return "\n".join(lines) + "\n" + _DONE


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    non_2xx: int  # wrk counts statuses above 399

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def wrk(url: str, request: Request, *, seconds: float, connections: int, script_dir: Path) -> WrkResult:
    """One wrk run (1 thread, pinned to the load CPU); raises when wrk fails or prints no result."""
    script = script_dir / "bench.lua"
    script.write_text(request.lua())
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "-s", str(script)]
    out = subprocess.run(
        pinned([*cmd, url + request.path], LOAD_CPU), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((line for line in out.stdout.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    requests, duration_us, connect, read, write, non_2xx, timeouts, p50, p99, top = map(int, line.split()[1:])
    seconds_run = duration_us / 1e6
    return WrkResult(
        requests=requests,
        seconds=round(seconds_run, 3),
        rps=round(requests / seconds_run, 1),
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        max_ms=top / 1000,
        socket_errors=connect + read + write + timeouts,
        non_2xx=non_2xx,
    )


def combine(runs: list[WrkResult]) -> dict[str, float | int]:
    """Runs of one side added up: requests and time summed, the median of their p50 and p99, the worst max."""
    requests, seconds = sum(run.requests for run in runs), sum(run.seconds for run in runs)
    return {
        "requests": requests,
        "seconds": round(seconds, 3),
        "rps": round(requests / seconds, 1) if seconds else 0.0,
        "p50_ms": statistics.median(run.p50_ms for run in runs),
        "p99_ms": statistics.median(run.p99_ms for run in runs),
        "max_ms": max(run.max_ms for run in runs),
        "socket_errors": sum(run.socket_errors for run in runs),
        "non_2xx": sum(run.non_2xx for run in runs),
    }


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def paced(port: int, path: str, *, rate: float, seconds: float, connections: int = 8) -> dict[str, object]:
    """``GET path`` at ``rate`` per second for ``seconds``, on a few keep-alive connections (what wrk2 would do)."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []

    async def one() -> None:
        reader, writer = await pool.get()
        started = time.perf_counter()
        try:
            statuses[await _get(reader, writer, path)] += 1
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            statuses[0] += 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        latencies.append(time.perf_counter() - started)
        pool.put_nowait((reader, writer))

    loop = asyncio.get_running_loop()
    begin = loop.time()
    tasks = []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, begin + i / rate - loop.time()))
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - begin
    while not pool.empty():
        pool.get_nowait()[1].close()
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "probes": len(latencies),
        "seconds": round(elapsed, 3),
        "rate": round(len(latencies) / elapsed, 1),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
    }
