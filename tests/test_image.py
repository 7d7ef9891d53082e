"""The image users ship: the baked Dockerfile built as written and run the way the Deployment runs it.

The build starts from the stand-in python base of scripts/container-sandbox. The container gets the pod's
constraints (a read-only root with a tmpfs on /tmp, user 10001, every capability dropped, no privilege
escalation) and PostgreSQL and Redis containers on a network of its own; the migrations run first as a
one-off container of the same image, as compose's migrate service and the Kubernetes Job run them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BUILD, answers, call, free_port, logs, podman, wait_for
from packaging.markers import Marker
from packaging.utils import canonicalize_name

AS_THE_POD_RUNS_IT = [
    "--read-only", "--tmpfs", "/tmp", "--user", "10001:10001",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
]  # fmt: skip


@dataclass
class Stack:
    network: str
    postgres: str  # the container's name
    env: list[str]  # the app's and the migration's variables, as `-e` options


@pytest.fixture(scope="module")
def stack(container_env: dict[str, str]) -> Iterator[Stack]:
    """PostgreSQL and Redis containers on a network of their own."""
    suffix = uuid.uuid4().hex[:8]
    network, postgres, redis = f"image-{suffix}", f"postgres-{suffix}", f"redis-{suffix}"
    podman("network", "create", network)
    try:
        podman(
            "run", "--detach", "--name", postgres, "--network", network, "-e", "POSTGRES_USER=app",
            "-e", "POSTGRES_PASSWORD=app", "-e", "POSTGRES_DB=app", "docker.io/library/postgres:16-bookworm",
        )  # fmt: skip
        podman("run", "--detach", "--name", redis, "--network", network, "docker.io/library/redis:7-bookworm")
        ready = ["exec", postgres, "pg_isready", "-h", "127.0.0.1", "-U", "app", "-d", "app"]
        wait_for("PostgreSQL ready", lambda: podman(*ready, check=False).returncode == 0)
        env = [f"DATABASE_URL=postgresql://app:app@{postgres}:5432/app", f"REDIS_URL=redis://{redis}:6379/0"]
        yield Stack(network, postgres, [option for value in env for option in ("-e", value)])
    finally:
        podman("rm", "--force", "--time", "0", postgres, redis, check=False)
        podman("network", "rm", "--force", network, check=False)


@pytest.fixture(scope="module")
def migrated(stack: Stack, service_image: str, image_project: Path) -> Stack:
    package = image_project.name.replace("-", "_")
    command = ["run", "--rm", "--network", stack.network, *AS_THE_POD_RUNS_IT, *stack.env, service_image]
    podman(*command, "python", "-m", package, "migrate")
    return stack


@dataclass
class App:
    name: str
    url: str  # the API port
    management: str  # the management port: /metrics, /admin, /health/detailed


@pytest.fixture
def app(migrated: Stack, service_image: str) -> Iterator[App]:
    """The image's own command (gunicorn), as the pod runs it, its two ports published on free local ports."""
    name, port, management = f"app-{uuid.uuid4().hex[:8]}", free_port(), free_port()
    podman(
        "run", "--detach", "--name", name, "--network", migrated.network, "--publish", f"127.0.0.1:{port}:8000",
        "--publish", f"127.0.0.1:{management}:9000",
        *AS_THE_POD_RUNS_IT, *migrated.env, "-e", "WEB_CONCURRENCY=2", service_image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        waited = wait_for("ready", lambda: answers(f"{url}/health/ready"))
        print(f"\n[figure] the container answered ready {waited:.1f} s after `podman run` returned")
        yield App(name, url, f"http://127.0.0.1:{management}")
    finally:
        print(logs(name)[-3000:])
        podman("rm", "--force", "--time", "0", name, check=False)


def build(tag: str, context: Path) -> str:
    """Build ``context`` as ``tag``: what podman said, in order (it says "Using cache" on stderr)."""
    command = [*BUILD, "--tag", tag, "."]
    result = subprocess.run(
        command, cwd=context, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout[-8000:]
    return result.stdout


def steps(output: str, *instructions: str) -> list[str]:
    """The build's steps of these instructions, each with what podman said about it."""
    return [step for step in output.split("STEP ")[1:] if step.split(": ", 1)[1].startswith(instructions)]


def test_a_second_build_reuses_every_layer_and_a_code_change_only_the_code(
    service_image: str, image_project: Path, tmp_path: Path
) -> None:
    """Unchanged, no step runs again; a code change reinstalls no dependency.
    The image keeps its HEALTHCHECK."""
    started = time.monotonic()
    warm = build(service_image, image_project)
    print(f"\n[figure] warm build (nothing changed): {time.monotonic() - started:.1f} s")
    # Every RUN: nothing is installed again. (podman 4.3's buildah copies a COPY --from again all the same.)
    assert all("Using cache" in step for step in steps(warm, "RUN")), warm[:6000]
    health = podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", service_image).stdout
    assert "/live" in health, health
    project = Path(shutil.copytree(image_project, tmp_path / image_project.name))
    package = project / "src" / project.name.replace("-", "_")
    (package / "__init__.py").write_text((package / "__init__.py").read_text() + f"# change {uuid.uuid4()}\n")
    started = time.monotonic()
    changed = build(f"{service_image}-changed", project)
    print(f"[figure] build after a code change: {time.monotonic() - started:.1f} s")
    runs = steps(changed, "RUN")
    dependencies = next(step for step in runs if "-r requirements/runtime.txt" in step.splitlines()[0])
    code = next(step for step in runs if "--no-build-isolation" in step.splitlines()[0])
    assert "Using cache" in dependencies and "Using cache" not in code
    podman("rmi", f"{service_image}-changed", check=False)


def test_the_image_holds_exactly_the_runtime_lock(service_image: str, image_project: Path) -> None:
    """Its environment holds each package of requirements/runtime.txt whose marker fits the image, at its pinned
    version, and the service itself; nothing else (no build backend, no test tool) but pip's own."""
    environment = (
        "import json; from pip._vendor.packaging.markers import default_environment as e; print(json.dumps(e()))"
    )
    image_env = json.loads(podman("run", "--rm", service_image, "python", "-c", environment).stdout)
    locked = {}
    for line in (image_project / "requirements" / "runtime.txt").read_text().splitlines():
        if line and not line.startswith(("#", " ")):
            pin, _, marker = line.rstrip(" \\").partition(" ; ")
            if not marker or Marker(marker).evaluate(image_env):
                name, version = pin.split("==")
                locked[canonicalize_name(name)] = version
    listed = json.loads(podman("run", "--rm", service_image, "pip", "list", "--format", "json").stdout)
    installed = {canonicalize_name(p["name"]): p["version"] for p in listed if p["name"] not in {"pip", "setuptools"}}
    assert installed == {**locked, image_project.name: "0.1.0"}


def test_the_image_serves_as_the_pod_runs_it(app: App) -> None:
    """Read-only root, user 10001, no capability; ready, an item written and read back, health and metrics on the
    management port alone, healthy."""
    assert podman("exec", app.name, "id", "-u").stdout.strip() == "10001"
    effective = podman("exec", app.name, "grep", "CapEff", "/proc/1/status").stdout.split()[-1]
    assert int(effective, 16) == 0
    written = podman("exec", app.name, "touch", "/app/x", check=False)
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    podman("exec", app.name, "touch", "/tmp/x")
    status, body = call("POST", f"{app.url}/api/v1/items", {"name": "from the image"})
    assert status == 201, body
    item = json.loads(body)
    assert call("GET", f"{app.url}/api/v1/items/{item['id']}") == (200, body)
    for path in ("/health/detailed", "/metrics"):
        assert (call("GET", f"{app.management}{path}")[0], call("GET", f"{app.url}{path}")[0]) == (200, 404), path
    assert podman("healthcheck", "run", app.name).returncode == 0
    health = podman("inspect", "--format", "{{.State.Health.Status}}", app.name).stdout.strip()
    assert health == "healthy"


def test_podman_stop_lets_every_request_in_flight_finish_then_exits_0(app: App, migrated: Stack) -> None:
    """SIGTERM while writes wait on a paused PostgreSQL: each write completes once it resumes, then exit 0."""
    podman("pause", migrated.postgres)
    with ThreadPoolExecutor(8) as pool:
        try:
            writes = [pool.submit(call, "POST", f"{app.url}/api/v1/items", {"name": f"w{i}"}) for i in range(8)]
            time.sleep(1)  # every write is in the service, waiting on the database
            assert not any(write.done() for write in writes)
            started = time.monotonic()
            stop = pool.submit(podman, "stop", "--time", "40", app.name)
            time.sleep(1)
            assert not stop.done(), "the container stopped with requests in flight"
        finally:
            podman("unpause", migrated.postgres)
        statuses = [write.result()[0] for write in writes]
        stop.result()
    stopped = time.monotonic() - started
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", app.name).stdout.strip()
    print(
        f"\n[figure] podman stop: {statuses.count(201)}/8 writes in flight completed, exit {exit_code}, {stopped:.1f} s"
    )
    assert statuses == [201] * 8
    assert exit_code == "0"
