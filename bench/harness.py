"""One bench run's resources: the baked service, its venv, the throwaway servers, and the gunicorns.

``Bench`` registers every process and folder it creates on an ExitStack, which undoes them in reverse
whatever happens (an error, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import load
import procs
import project
from load import Request

OUT = project.TEMPLATE / "bench" / "out"
CONNECTIONS = 64
SLICE_SECONDS = 2  # short enough to alternate often; long enough that each run's first requests weigh little
_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


@functools.cache
def _gunicorn_flags(gunicorn: str) -> str:
    return subprocess.run([gunicorn, "--help"], capture_output=True, text=True, check=False).stdout


class Bench:
    """Owns every process and folder of one run; ``stack`` undoes them in reverse, whatever happens."""

    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.stack = stack
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
        template = project.export(args.ref, self.tmp / "template") if args.ref else project.TEMPLATE
        say(f"baking the default answers of {args.ref or 'the working tree'}, installing them in .bake/bench-venv")
        self.project = project.bake(template, self.tmp / "bake")
        self.bin = project.project_venv(self.project, *(["py-spy"] if args.profile else []))
        self.package = project.package_name(self.project)
        sys.path.insert(0, str(self.project))
        os.environ.setdefault("TEST_SERVERS", "local")  # no container networking in the measured path
        servers = __import__("tests.servers", fromlist=["postgres_server"])
        say("starting throwaway PostgreSQL and Redis")
        try:
            self.postgres = servers.postgres_server()
            stack.callback(self.postgres.close)
            self.redis = __import__("tests.redis_cache.servers", fromlist=["redis_server"]).redis_server()
            stack.callback(self.redis.close)
        except BaseException as exc:  # servers.py calls pytest.skip() when it finds no server to run
            if type(exc).__name__ not in ("Skipped", "Failed"):
                raise
            raise SystemExit(f"bench: {exc}") from None
        env = self.env("setup", procs.free_port())
        project.check([str(self.bin / "python"), "-m", self.package, "migrate"], cwd=self.project, env=env)
        self.config = project.effective_settings(self.bin, self.project, env)

    def env(self, name: str, port: int, database_url: str | None = None) -> dict[str, str]:
        return project.service_env(
            database_url=database_url or self.postgres.url,
            redis_url=self.redis.url,
            port=port,
            metrics_dir=self.tmp / f"metrics-{name}",
            package=self.package,
        )

    def _start(
        self, name: str, cmd: list[str], env: dict[str, str], port: int, ready: str, management_port: int | None = None
    ) -> procs.Server:
        log = self.tmp / f"{name}.log"
        server = procs.start(
            name, cmd, env=env, cwd=self.project, log=log, port=port, ready_path=ready, management_port=management_port
        )
        self.stack.callback(server.stop)
        return server

    def start_service(
        self,
        name: str,
        app: str | None = None,
        database_url: str | None = None,
        log_level: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> procs.Server:
        """A: ``gunicorn -c gunicorn.conf.py`` as generated (``app`` overrides its wsgi_app)."""
        port, management = procs.free_port(), procs.free_port()  # /metrics is on the management port
        cmd = [str(self.bin / "gunicorn"), "-c", "gunicorn.conf.py", *([app] if app else [])]
        env = self.env(name, port, database_url) | ({"LOG_LEVEL": log_level} if log_level else {}) | (extra_env or {})
        env["MANAGEMENT_PORT"] = str(management)
        return self._start(name, cmd, env, port, "/health/ready", management)

    def start_bare(self, name: str = "bare", extra_env: dict[str, str] | None = None) -> procs.Server:
        """B: the bare app on the service's worker class, with the service's server and pool settings."""
        port, server = procs.free_port(), self.config["server"]
        # As gunicorn.conf.py: heartbeat files in memory, no control socket.
        same = ["--worker-tmp-dir", "/dev/shm"] if Path("/dev/shm").is_dir() else []
        if "--no-control-socket" in _gunicorn_flags(str(self.bin / "gunicorn")):
            same.append("--no-control-socket")
        cmd = [
            str(self.bin / "gunicorn"), "-k", f"{self.package}.worker.Worker", "-w", "1", "-b", f"127.0.0.1:{port}",
            "--keep-alive", str(int(server["keepalive_seconds"])),
            "--timeout", str(int(server["worker_timeout_seconds"])),
            "--graceful-timeout", str(int(server["graceful_timeout"])), *same, "bench.bare_app:create()",
        ]  # fmt: skip
        env = self.env(name, port) | {"BENCH_ENGINE": json.dumps(self.config["db"])} | (extra_env or {})
        return self._start(name, cmd, env, port, "/health/live")

    def pair(
        self, a: procs.Server, b: procs.Server, request: Request, b_request: Request | None = None
    ) -> dict[str, dict[str, float | int]]:
        """One A/B pair: a warm-up of each, then 2 s wrk runs alternating A, B, A, B... for ``seconds`` each.

        Alternating every two seconds rather than once per pair: a neighbour that slows the machine for a few
        seconds slows both sides alike, so the ratio holds. Per side: the runs' requests and time added up,
        the median of their p50 and p99, and the worker's CPU time per request (the steadier figure on a
        shared machine: a neighbour that takes the CPU away lowers a run's requests per second, not what
        each request costs). ``b_request``, when given, is B's request: the same work done another way.
        """
        sides = {"A": a, "B": b}
        requests = {"A": request, "B": b_request or request}
        for side, server in sides.items():
            load.wrk(server.url, requests[side], seconds=self.args.warmup, connections=CONNECTIONS, script_dir=self.tmp)
        runs: dict[str, list[load.WrkResult]] = {side: [] for side in sides}
        cpu = dict.fromkeys(sides, 0.0)
        for _ in range(max(1, round(self.args.seconds / SLICE_SECONDS))):
            for side, server in sides.items():
                before = server.cpu_seconds()
                runs[side].append(
                    load.wrk(
                        server.url, requests[side], seconds=SLICE_SECONDS, connections=CONNECTIONS, script_dir=self.tmp
                    )
                )
                cpu[side] += server.cpu_seconds() - before
        for server in sides.values():
            server.truncate_log()
        return {side: load.combine(runs[side]) | {"cpu_us": _per_request(cpu[side], runs[side])} for side in sides}


def _per_request(cpu_seconds: float, runs: list[load.WrkResult]) -> float:
    return round(cpu_seconds / max(sum(run.requests for run in runs), 1) * 1e6, 1)
