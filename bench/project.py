"""The service under test: baked from the template with the default answers, in a venv of the bench's own.

The venv is ``.bake/bench-venv``, not the template tests' ``.bake/venv``: a ``make test`` running at the
same time reinstalls its own baked project there, which would swap the code under a running bench.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
BENCH_VENV = TEMPLATE / ".bake" / "bench-venv"


def bake(template: Path, output_dir: Path) -> Path:
    """The default answers, baked into ``output_dir``; returns the project folder."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)  # the post-gen hook's "next steps", printed by a child process
        try:
            return Path(cookiecutter(str(template), no_input=True, output_dir=str(output_dir)))
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def export(ref: str, into: Path) -> Path:
    """The template as committed at ``ref`` (``git archive``), to bench an older or newer version."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=TEMPLATE, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def project_venv(project: Path, *extra: str) -> Path:
    """As the template tests' ``project_venv()``: the bake's dev lock installed with hashes required, then the
    project (editable) and ``extra``; returns the bin folder. A ref from before the locks installs ``project[dev]``."""
    bin_dir = BENCH_VENV / "bin"
    if not (bin_dir / "python").exists():
        venv.create(BENCH_VENV, with_pip=True, symlinks=True)
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    lock = project / "requirements" / "dev.txt"
    if lock.exists():
        check([*pip, "--require-hashes", "-r", str(lock)], cwd=project)
        check([*pip, "--no-deps", "--no-build-isolation", "-e", str(project)], cwd=project)
        if extra:
            check([*pip, *extra], cwd=project)
    else:
        check([*pip, "-e", f"{project}[dev]", *extra], cwd=project)
    # The image's `pip install .` compiles the service's bytecode; an editable install does not, and with
    # PYTHONDONTWRITEBYTECODE set every start would compile it again and count that in start to ready.
    check([str(bin_dir / "python"), "-m", "compileall", "-q", str(project / "src")], cwd=project)
    return bin_dir


def package_name(project: Path) -> str:
    (package,) = [path.name for path in (project / "src").iterdir() if (path / "__init__.py").exists()]
    return package


def check(
    cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; on failure raise with its output."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result


def service_env(*, database_url: str, redis_url: str, port: int, metrics_dir: Path, package: str) -> dict[str, str]:
    """The environment of one gunicorn: the caller's, with the servers, one worker, and the bench's names."""
    ports = ("PORT", "MANAGEMENT_PORT")
    ours = ("DATABASE_URL", "REDIS_URL", *ports, "HOST", "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR", "VIRTUAL_ENV")
    env = {key: value for key, value in os.environ.items() if key not in ours and not key.startswith("PYTEST")}
    return env | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PYTHONPATH": str(TEMPLATE),  # for bench.app_with_noop and bench.bare_app
        "BENCH_PACKAGE": package,
    }


def effective_settings(bin_dir: Path, project: Path, env: dict[str, str]) -> dict[str, Any]:
    """The service's effective settings (``check-config``), so that the bare app can match its pool and server."""
    out = check([str(bin_dir / "python"), "-m", package_name(project), "check-config"], cwd=project, env=env)
    settings: dict[str, Any] = json.loads(out.stdout)
    return settings
