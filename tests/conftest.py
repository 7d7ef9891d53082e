"""Shared fixtures: bake the template with real cookiecutter and install what a baked project needs.

`make test` runs this suite on two pytest-xdist workers. What they share is made once, under a lock: the
environments under ``.bake/venvs`` and the default bake with its environment. Every test that uses the
container sandbox runs on one worker (the xdist group "podman"), which starts the Docker API and stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
DEFAULTS: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text())
SANDBOX = TEMPLATE / "scripts" / "container-sandbox"
# For a make that a test runs as a user would: not a sub-make of the `make test` running the tests.
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def bake(output_dir: Path, **answers: Any) -> Path:
    """Bake the template with ``answers`` over the defaults and return the project folder."""
    extra = {key: str(value) for key, value in answers.items()}
    return Path(cookiecutter(str(TEMPLATE), no_input=True, extra_context=extra, output_dir=str(output_dir)))


def run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and fail the test with its output when it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout[-8000:]}\n{result.stderr[-8000:]}")
    return result


def run_suite(label: str, bin_dir: Path, project: Path, env: dict[str, str], *paths: str) -> None:
    """Run a baked project's pytest (all of it, or ``paths``) and fail unless it passed with nothing skipped."""
    started = time.monotonic()
    result = run(
        [str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *paths],
        cwd=project,
        env=env,
        timeout=900,
    )
    summary = result.stdout.strip().splitlines()[-1]
    print(f"\n{label}: {summary} (wall {time.monotonic() - started:.0f}s)")
    assert " passed" in summary
    assert "skipped" not in summary and "failed" not in summary and "error" not in summary


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold ``lock``, a file created if missing, against every other process that asks for it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def locked_venv(project: Path) -> Path:
    """A virtual environment holding exactly ``project``'s dev lock, installed as `make install` does (hashes
    required); returns its bin folder.

    There is one environment per distinct lock, under ``.bake/venvs``, kept between sessions: every bake whose
    answers lock the same set shares it, so the combinations run on the set their own lock names.
    """
    lock = project / "requirements" / "dev.txt"
    env_dir = TEMPLATE / ".bake" / "venvs" / hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    bin_dir = env_dir / "bin"
    with exclusive(env_dir.with_suffix(".lock")):
        if not (env_dir / ".installed").exists():
            shutil.rmtree(env_dir, ignore_errors=True)
            venv.create(env_dir, with_pip=True, symlinks=True)
            install = ["install", "-q", "--require-hashes", "-r", str(lock)]
            run([str(bin_dir / "python"), "-m", "pip", *install], cwd=project)
            (env_dir / ".installed").touch()
    return bin_dir


def project_venv(project: Path) -> Path:
    """``locked_venv`` with ``project`` itself installed in it, editable and without dependencies, as `make install`
    installs it; returns its bin folder."""
    bin_dir = locked_venv(project)
    install = ["install", "-q", "--no-deps", "--no-build-isolation", "-e", str(project)]
    run([str(bin_dir / "python"), "-m", "pip", *install], cwd=project)
    return bin_dir


def containers_allowed() -> bool:
    """Whether the container path may run: it installs system packages and builds images, so only when asked
    (CONTAINERS=1; `make test` passes CONTAINERS=0 otherwise) or, with CONTAINERS unset, in CI (CI=true)."""
    asked = os.environ.get("CONTAINERS", "")
    return asked == "1" if asked else os.environ.get("CI") == "true"


CONTAINERS_OFF = (
    "container path off (it installs podman and builds images as root): CONTAINERS=1 make test runs it,"
    " scripts/container-sandbox plan says what it would install and build"
)


# tests/parts holds a part and its test written for a bake (tests/test_parts.py copies them in), not tests of this suite.
collect_ignore = ["parts"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One worker runs every test that uses the container sandbox: it starts the Docker API and stops it. Unless
    the container path is allowed, those tests are skipped, each with the reason and how to run them."""
    allowed = containers_allowed()
    for item in items:
        if "container_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("podman"))
            if not allowed:
                item.add_marker(pytest.mark.skip(reason=CONTAINERS_OFF))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Close the run with one line naming the container tests that did not run, and how to run them."""
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if CONTAINERS_OFF in str(report.longrepr)]
    if skipped:
        files = sorted({report.nodeid.split("::")[0] for report in skipped})
        terminalreporter.write_line(f"{len(skipped)} tests did not run, in {', '.join(files)}: {CONTAINERS_OFF}")


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this run that every xdist worker shares (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default answers, baked once per run, for every worker."""
    folder = run_folder(tmp_path_factory) / "default"
    with exclusive(folder.with_suffix(".lock")):
        if not (folder / ".baked").exists():
            shutil.rmtree(folder, ignore_errors=True)
            bake(folder)
            (folder / ".baked").touch()
    return next(path for path in folder.iterdir() if path.is_dir())


@pytest.fixture(scope="session")
def default_bin(default_project: Path) -> Path:
    """The bin folder of a venv where the default project is installed (once per run)."""
    folder = default_project.parent
    with exclusive(folder.with_suffix(".lock")):
        if not (folder / ".installed").exists():
            project_venv(default_project)
            (folder / ".installed").touch()
    return locked_venv(default_project)


@pytest.fixture
def tool_env() -> Iterator[dict[str, str]]:
    """An environment for running a baked project's tools, free of this process's pytest plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
    yield env


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def which(tool: str) -> str | None:
    return shutil.which(tool)


def sandbox() -> tuple[dict[str, str], str, float]:
    """Run scripts/container-sandbox: the variables it exports, what it said, and its wall time."""
    started = time.monotonic()
    result = run([str(SANDBOX)], cwd=TEMPLATE, timeout=900)
    exports = [shlex.split(line)[1:] for line in result.stdout.splitlines() if line.startswith("export ")]
    env = dict(pair.split("=", 1) for line in exports for pair in line)
    return env, result.stderr, time.monotonic() - started


@pytest.fixture(scope="session")
def container_env() -> Iterator[dict[str, str]]:
    """podman's Docker API and the stand-in images; the API stops at the end if this session started it."""
    env, said, seconds = sandbox()
    print(f"\ncontainer sandbox ready in {seconds:.1f}s:\n{said}")
    yield env
    if "serving the Docker API" in said:
        run([str(SANDBOX), "stop"], cwd=TEMPLATE)


# `--format docker`: an OCI image, podman's default, has no HEALTHCHECK.
BUILD = ["podman", "build", "--format", "docker"]


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run podman; with ``check``, fail the test with its output when it fails."""
    if check:
        return run(["podman", *args], cwd=TEMPLATE, timeout=timeout)
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)


def logs(container: str) -> str:
    """What the container wrote, stdout and stderr alike."""
    said = podman("logs", container, check=False)
    return said.stdout + said.stderr


@pytest.fixture(scope="session")
def image_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default answers baked for the image alone: no test's venv, cache or bytecode lands in its context."""
    return bake(tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="session")
def service_image(image_project: Path, container_env: dict[str, str]) -> Iterator[str]:
    """The default bake's Dockerfile built as written, from no cache: its tag."""
    tag = f"localhost/{image_project.name}:test"
    # An interrupted build leaves working containers that pin half a chain of cached layers: a later build would
    # take its first steps from that chain and miss the rest.
    listed = podman("ps", "--all", "--external", "--format", "{{.ID}} {{.Status}}").stdout.splitlines()
    if leftovers := [line.split()[0] for line in listed if line.endswith("Storage")]:
        podman("rm", "--force", *leftovers)
    started = time.monotonic()
    run([*BUILD, "--no-cache", "--tag", tag, "."], cwd=image_project, timeout=900)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    print(f"\n[figure] {tag}: {size / 1e6:.0f} MB, cold build {time.monotonic() - started:.0f} s")
    yield tag
    podman("rmi", "--force", tag, check=False)
    podman("image", "prune", "--force", check=False)  # this build's layers: the next session builds from none


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def call(method: str, url: str, body: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, bytes]:
    """One HTTP request (JSON ``body``): its status and body, whatever the status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def answers(url: str) -> bool:
    """Whether GET ``url`` answers 200 now."""
    try:
        return call("GET", url, timeout=2)[0] == 200
    except OSError:
        return False


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 60) -> float:
    """Seconds until ``predicate`` holds; fails the test after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.2)
    return time.monotonic() - started
