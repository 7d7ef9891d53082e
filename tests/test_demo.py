"""`make demo`: bakes once, reuses the bake while the template is unchanged, and stops without make's complaint."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from conftest import MAKE_ENV, TEMPLATE, answers, free_port, wait_for


def demo(folder: Path, port: int) -> subprocess.Popen[str]:
    """`make demo` into ``folder`` on ``port``, once its server answers."""
    command = ["make", "--no-print-directory", "-C", str(TEMPLATE), "demo", f"DEMO_DIR={folder}", f"PORT={port}"]
    make = subprocess.Popen(command, env=MAKE_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(
        "the demo's liveness", lambda: make.poll() is None and answers(f"http://127.0.0.1:{port}/health/live"), 300
    )
    return make


def test_demo_reuses_its_bake_and_stops_cleanly(tmp_path: Path) -> None:
    """The first demo bakes and installs, a second reuses both; SIGTERM to make drains the server with no
    "*** Terminated" from make, and SIGTERM to the server ends make with the server's 0."""
    folder, port = tmp_path / "demo", free_port()
    first = demo(folder, port)
    first.send_signal(signal.SIGTERM)
    said = first.communicate(timeout=60)[0]
    assert said.startswith("demo: baking the template's working tree into"), said
    assert "Finished server process" in said  # uvicorn drained it
    assert "make: ***" not in said and "Next steps" not in said
    assert first.returncode == -signal.SIGTERM  # make ends by the signal it was sent, as GNU make always does

    second = demo(folder, port)
    (server,) = Path(f"/proc/{second.pid}/task/{second.pid}/children").read_text().split()
    os.kill(int(server), signal.SIGTERM)
    said = second.communicate(timeout=60)[0]
    assert said.startswith("demo: reusing"), said
    assert "pip" not in said and "make: ***" not in said
    assert second.returncode == 0
