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

_SITE = re.compile(r"^.*?/(?:site-packages|lib/python3\.\d+)/")


def record(py_spy: Path, pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds`` into ``out`` (collapsed stacks, one frame per function)."""
    cmd = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate)]
    cmd += ["--function", "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = _SITE.sub("", where.rstrip(")"))
    return f"{name} ({where})" if where else name


def summarise(collapsed: Path, top: int = 12) -> dict[str, object]:
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            anywhere[frame] += count
    if total == 0:
        return {"samples": 0, "self": [], "total": []}

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * count / total, 1)) for name, count in counter.most_common(top)]

    # Total time is dominated by the event loop and ASGI plumbing every request passes; skip frames above
    # the application (the loop, the worker, uvicorn's protocol) so the list shows where requests differ.
    plumbing = ("run_forever", "_run_once", "_run (asyncio", "run (", "<module>", "serve (", "main (", "startup (")
    deep = Counter({name: count for name, count in anywhere.items() if not name.startswith(plumbing)})
    return {"samples": total, "self": shares(own), "total": shares(deep)}


def format_summary(route: str, summary: dict[str, object]) -> str:
    lines = [f"  {route}: {summary['samples']} samples"]
    for title in ("self", "total"):
        lines.append(f"    by {title} time:")
        for name, share in summary[title]:  # type: ignore[attr-defined]
            lines.append(f"      {share:5.1f}%  {name}")
    return "\n".join(lines)
