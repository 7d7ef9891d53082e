"""docker-compose.yml, run as written with podman-compose: servers healthy, the migrations, then the service.

podman 4.3 cannot honour compose's depends_on conditions: it has no `podman wait --condition=healthy`, runs no
HEALTHCHECK without systemd's timers, and cannot start a container whose dependency has exited (podman-compose
1.6 skips the health conditions on it, then fails to start the app). So this test starts the services one at a
time (`up --no-deps`), in the order the file's depends_on gives, and satisfies each condition as Docker Compose
would before starting what depends on it: `podman healthcheck run` plays the timer for service_healthy, and
`podman wait` gives the exit code for service_completed_successfully. Everything else (build context, image,
environment, read-only root, tmpfs, dropped capabilities, volume, ports, stop grace period) is podman-compose's
translation of the file. test_docker.py checks that the file names those conditions.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import answers, call, listening, logs, podman, run, wait_for

COMPOSE = Path(sys.executable).parent / "podman-compose"


class Stack:
    def __init__(self, project: Path, name: str) -> None:
        self.project, self.name = project, name
        self.services: dict[str, Any] = yaml.safe_load((project / "docker-compose.yml").read_text())["services"]

    def compose(self, *args: str, timeout: float = 300) -> str:
        return run([str(COMPOSE), "-p", self.name, *args], cwd=self.project, timeout=timeout).stdout

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def satisfy(self, service: str, condition: str) -> float:
        """Wait until ``service`` meets ``condition``, as Docker Compose does before starting its dependents."""
        started, container = time.monotonic(), self.container(service)
        if condition == "service_completed_successfully":
            exit_code = podman("wait", container, timeout=300).stdout.strip()
            assert exit_code == "0", logs(container)[-3000:]
        elif condition == "service_healthy":
            check = self.services[service]["healthcheck"]
            interval = float(check["interval"].removesuffix("s"))
            for _ in range(int(check["retries"]) + 1):
                if podman("healthcheck", "run", container, check=False).returncode == 0:
                    break
                time.sleep(interval)
            else:
                pytest.fail(f"{service} never became healthy")
        return time.monotonic() - started

    def up(self) -> list[str]:
        """Every service, each once its dependencies meet their conditions; the order they started in."""
        graph = {name: set(spec.get("depends_on", {})) for name, spec in self.services.items()}
        order = list(TopologicalSorter(graph).static_order())
        met: set[tuple[str, str]] = set()
        for service in order:
            for dependency, rule in self.services[service].get("depends_on", {}).items():
                if (dependency, rule["condition"]) not in met:
                    waited = self.satisfy(dependency, rule["condition"])
                    print(f"{dependency}: {rule['condition']} after {waited:.1f} s")
                    met.add((dependency, rule["condition"]))
            self.compose("up", "--detach", "--no-deps", service)
        return order


@pytest.fixture
def stack(image_project: Path, service_image: str) -> Iterator[Stack]:
    """The default bake's compose project under a name of its own, its image the one already built."""
    stack = Stack(image_project, f"compose{uuid.uuid4().hex[:6]}")
    image = stack.services["app"]["image"]
    podman("tag", service_image, f"localhost/{image}")
    try:
        yield stack
    finally:
        stack.compose("down", "--volumes", timeout=120)
        podman("untag", service_image, f"localhost/{image}", check=False)


def test_compose_brings_the_stack_up_in_order_and_down_with_its_volumes(stack: Stack) -> None:
    """Servers healthy, then the migration to exit 0, then the service ready and serving; down leaves nothing."""
    port = int(stack.services["app"]["ports"][0].split(":")[0])
    assert not listening(port), f"port {port}, which docker-compose.yml publishes, is taken on this machine"
    started = time.monotonic()
    order = stack.up()
    assert order.index("migrate") < order.index("app")
    wait_for("the app ready", lambda: answers(f"http://127.0.0.1:{port}/health/ready"))
    print(f"\n[figure] compose: ready {time.monotonic() - started:.1f} s after the first `up`")
    status, body = call("POST", f"http://127.0.0.1:{port}/api/v1/items", {"name": "composed"})
    assert status == 201, body
    inspect = json.loads(podman("inspect", stack.container("app")).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert inspect["Config"]["User"] == "10001:10001"
    assert podman("exec", stack.container("app"), "id", "-u").stdout.strip() == "10001"
    started = time.monotonic()
    stack.compose("down", "--volumes", timeout=120)
    print(f"[figure] compose down --volumes: {time.monotonic() - started:.1f} s")
    label = f"label=io.podman.compose.project={stack.name}"
    assert podman("ps", "--all", "--quiet", "--filter", label).stdout.strip() == ""
    assert podman("volume", "ls", "--quiet", "--filter", label).stdout.strip() == ""
