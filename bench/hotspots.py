"""Where a worker spends its time under load: py-spy samples, summed by function.

py-spy writes collapsed stacks (``frame;frame;... count``, one line per distinct stack), which speedscope
and flamegraph.pl open as they are; this module also sums them into self time (the function was on top)
and total time (the function was anywhere on the stack), as shares of all samples.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

_SITE = re.compile(r"^.*?/(?:site-packages|lib/python3\.\d+)/")


RATE = 200  # samples per second


def record(py_spy: Path, pid: int, seconds: float, out: Path, rate: int = RATE) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds`` into ``out`` (collapsed stacks, one frame per function)."""
    cmd = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate)]
    cmd += ["--function", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = _SITE.sub("", where.rstrip(")"))
    return f"{name} ({where})" if where else name


# Frames every request passes above the application: the process, the worker, the event loop.
_OUTER = ("gunicorn/", "uvicorn_worker/", "asyncio/", "uvicorn/_compat.py", "uvicorn/server.py", "uvloop")


# Each busy sample goes to the component of the frame nearest its leaf that matches one of these
# (substrings of "function (path:line)"; the first pattern that matches wins). Frames that match none,
# helpers such as asyncio, contextlib or Starlette's header classes, pass the sample on to their caller:
# a header lookup made by the metrics middleware is the metrics middleware's cost.
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("uvicorn: HTTP parsing and response writes", ("(uvicorn/protocols/",)),
    ("prometheus_client multiprocess value writes", ("(prometheus_client/",)),
    ("logging (access log, JSON formatter)", ("(logging/", "JsonFormatter")),
    ("request id: uuid4", ("(uuid.py",)),
    (
        "threadpool hop (sync dependency or to_thread)",
        ("run_in_threadpool", "(anyio/", "(concurrent/", "(threading.py"),
    ),
    ("redis client", ("(redis/",)),
    ("asyncpg", ("(asyncpg/",)),
    ("SQLAlchemy", ("(sqlalchemy/",)),
    ("pydantic", ("(pydantic",)),
    ("service: dependency guard", ("resilience/guard.py", "resilience/dependency.py", "resilience/breaker.py", "resilience/bulkhead.py")),
    ("metrics middleware (instrumentator)", ("(prometheus_fastapi_instrumentator/",)),
    ("service: request middleware (id, deadline, metrics)", ("/middleware.py", "resilience/deadline.py")),
    ("service: access log and request id", ("/observability.py",)),
    ("service: other code", ("(PACKAGE/",)),
    (
        "FastAPI/Starlette: routing, dependencies, responses",
        ("(fastapi/", "(starlette/routing", "(starlette/responses", "(starlette/middleware", "(starlette/_exception"),
    ),
]
FALLBACK = "event loop, asyncio and other (uvloop's C code shows as Runner.run)"


def _component(frames: list[str], package: str) -> str:
    for frame in reversed(frames):
        for label, patterns in COMPONENTS:
            if any(pattern.replace("PACKAGE", package) in frame for pattern in patterns):
                return label
    return FALLBACK


def _library(frame: str) -> str:
    where = frame.partition(" (")[2]
    return where.split("/", 1)[0].split(":", 1)[0].removesuffix(".py") or "(native)"


def summarise(collapsed: Path, package: str, top: int = 12) -> dict[str, object]:
    """Time by component and by library, top functions by self and total time: % of busy samples."""
    components: Counter[str] = Counter()
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    total = other_threads = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        if frames[0].startswith("Thread._bootstrap"):
            other_threads += count  # the threadpool's threads, nearly always waiting for work
            continue
        total += count
        own[frames[-1]] += count
        libraries[_library(frames[-1])] += count
        components[_component(frames, package)] += count
        for frame in set(frames):
            if not frame.partition(" (")[2].startswith(_OUTER) and not frame.startswith("<module>"):
                anywhere[frame] += count
    if total == 0:
        return {
            "samples": 0,
            "other_thread_samples": other_threads,
            "component": [],
            "library": [],
            "self": [],
            "total": [],
        }

    def shares(counter: Counter[str], n: int = top) -> list[tuple[str, float]]:
        return [(name, round(100 * count / total, 1)) for name, count in counter.most_common(n)]

    return {
        "samples": total,
        "other_thread_samples": other_threads,
        "component": shares(components, len(COMPONENTS) + 1),
        "library": shares(libraries, 10),
        "self": shares(own),
        "total": shares(anywhere),
    }


def format_summary(route: str, summary: dict[str, Any], sections: tuple[str, ...] = ("component", "self")) -> str:
    busy = f", the loop busy {summary['busy']:.0%} of the time" if "busy" in summary else ""
    lines = [f"  {route}: {summary['samples']} busy samples of the event loop's thread{busy}"]
    for title in sections:
        lines.append(f"    by {title} time:")
        for name, share in summary[title][:10]:
            lines.append(f"      {share:5.1f}%  {name}")
    return "\n".join(lines)
