"""The Kubernetes manifests users copy, run: `podman kube play` of the rendered k8s/base with the built image.

podman 4.3 plays Pods, Deployments and the ConfigMaps they read, and nothing else of the base. What this test
does about the rest, and why:
- Service, PodDisruptionBudget, ScaledObject, NetworkPolicy, ServiceAccount: kinds podman does not play (it
  skips them in a multi-document file); test_k8s.py validates them against the Kubernetes and KEDA schemas.
- The job worker's Deployment: not played; the baked project's tests/jobs run real workers.
- Job: skipped by podman as well, so its pod template is played as a Pod, to completion, before the Deployment.
- Secret: podman stores a played Secret in a form its own secretKeyRef cannot read ("not valid JSON"), so the
  Secret is created with `podman secret create`, as JSON of base64 values, the form secretKeyRef reads.
- The Deployment runs one replica (podman makes a pod per replica, each publishing the same host ports) and its
  containerPort is not published on the host: the test talks to the pod's address on its network.
- podman ignores the startup and readiness probes, preStop and terminationGracePeriodSeconds, and turns the
  liveness probe into a curl command the image does not have: the test requests each probe's path itself.
- `podman kube down` stops with SIGKILL, and `podman pod stop` stops the pod's infra container, and with it the
  pod's network, at the same moment as the app, which then cannot even close its database connections. The
  kubelet stops the containers first and the pod's network last: the test stops the app container with the
  pod's grace period, then the pod, and `kube down` removes what is left.
Names get a per-run suffix: podman's secrets and emptyDir volumes are global to the machine.
"""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import answers, call, logs, podman, wait_for
from test_k8s import container_of, deployment_of, one, render

Obj = dict[str, Any]


def for_podman(pod_spec: Obj, run: str) -> Obj:
    """The pod spec with this run's Secret and volume names, and no containerPort published on the host."""
    spec = copy.deepcopy(pod_spec)
    for container in spec["containers"]:
        container.pop("ports", None)
        for env in container.get("env", []):
            if ref := env.get("valueFrom", {}).get("secretKeyRef"):
                ref["name"] = f"{ref['name']}-{run}"
        for mount in container.get("volumeMounts", []):
            mount["name"] = f"{mount['name']}-{run}"
    for volume in spec.get("volumes", []):
        volume["name"] = f"{volume['name']}-{run}"
    return spec


@dataclass
class Played:
    app_pod: str
    app: str  # the app container
    migrate: str  # the migration container
    url: str  # the app pod's address on the network, its API port
    management: str  # the same address, its management port
    deployment: Obj
    config: dict[str, str]
    database_url: str


def exited(container: str) -> bool:
    return podman("inspect", "--format", "{{.State.Status}}", container).stdout.strip() == "exited"


@pytest.fixture(scope="module")
def played(image_project: Path, service_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    """PostgreSQL as a Pod, the migration Job's pod played to completion, then the Deployment."""
    objects = render(image_project)["base"]
    deployment, job, config_map = deployment_of(objects), one(objects, "Job"), one(objects, "ConfigMap")
    slug, run = deployment["metadata"]["name"], uuid.uuid4().hex[:6]
    work = tmp_path_factory.mktemp("kube-play")
    image = container_of(objects)["image"]  # slug:0.1.0 after kustomize's images entry
    network, db, secret = f"kube-{run}", f"db-{run}", f"{slug}-{run}"
    database_url = f"postgresql://app:app@{db}:5432/app"
    files = {
        "db": [{
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": db},
            "spec": {"containers": [{
                "name": "postgres", "image": "docker.io/library/postgres:16-bookworm",
                "env": [{"name": f"POSTGRES_{key}", "value": "app"} for key in ("USER", "PASSWORD", "DB")],
            }]},
        }],
        "migrate": [config_map, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{job['metadata']['name']}-{run}"},
            "spec": for_podman(job["spec"]["template"]["spec"], run),
        }],
        "app": [config_map, {
            **deployment, "metadata": {**deployment["metadata"], "name": f"{slug}-{run}"},
            "spec": {**deployment["spec"], "replicas": 1, "template": {
                **deployment["spec"]["template"], "spec": for_podman(deployment["spec"]["template"]["spec"], run),
            }},
        }],
    }  # fmt: skip
    for name, documents in files.items():
        (work / f"{name}.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    played_files: list[str] = []

    def play(name: str) -> None:
        podman("kube", "play", "--build=false", "--network", network, str(work / f"{name}.yaml"))
        played_files.append(str(work / f"{name}.yaml"))

    podman("tag", service_image, f"localhost/{image}")
    podman("network", "create", network)
    secret_data = json.dumps({"DATABASE_URL": base64.b64encode(database_url.encode()).decode()})
    (work / "secret.json").write_text(secret_data)
    podman("secret", "create", secret, str(work / "secret.json"))
    try:
        play("db")
        ready = ["exec", f"{db}-postgres", "pg_isready", "-h", "127.0.0.1", "-U", "app", "-d", "app"]
        wait_for("PostgreSQL ready", lambda: podman(*ready, check=False).returncode == 0)
        play("migrate")
        migrate = f"{job['metadata']['name']}-{run}-migrate"
        waited = wait_for("the migration", lambda: exited(migrate), timeout=120)
        print(f"\n[figure] the migration pod completed in {waited:.1f} s")
        play("app")
        app_pod = f"{slug}-{run}-pod-0"
        infra = podman("pod", "inspect", "--format", "{{.InfraContainerID}}", app_pod).stdout.strip()
        address = podman(
            "inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', infra
        ).stdout.strip()
        url = f"http://{address}:{config_map['data']['PORT']}"
        management = f"http://{address}:{config_map['data']['MANAGEMENT_PORT']}"
        yield Played(app_pod, f"{app_pod}-app", migrate, url, management, deployment, config_map["data"], database_url)
    finally:
        for file in reversed(played_files):
            podman("kube", "down", file, check=False)
        podman("secret", "rm", secret, check=False)
        podman("network", "rm", "--force", network, check=False)
        podman("untag", service_image, f"localhost/{image}", check=False)


def test_the_migration_job_completes(played: Played) -> None:
    """The Job's pod, with the Deployment's hardening and settings, migrates the database and exits 0."""
    assert podman("inspect", "--format", "{{.State.ExitCode}}", played.migrate).stdout.strip() == "0"
    assert "Running upgrade" in logs(played.migrate)


def test_the_pod_runs_as_the_manifest_says(played: Played) -> None:
    """User 10001 on a read-only root with no capability, /tmp on the emptyDir, env from ConfigMap and Secret."""
    exec_ = ("exec", played.app)
    assert podman(*exec_, "id", "-u").stdout.strip() == "10001"
    status = podman(*exec_, "cat", "/proc/1/status").stdout
    assert int(next(line for line in status.splitlines() if line.startswith("CapEff")).split()[1], 16) == 0
    assert next(line for line in status.splitlines() if line.startswith("NoNewPrivs")).split()[1] == "1"
    written = podman(*exec_, "touch", "/app/x", check=False)
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    podman(*exec_, "touch", "/tmp/x")
    mounts = json.loads(podman("inspect", "--format", "{{json .Mounts}}", played.app).stdout)
    assert [m["Type"] for m in mounts if m["Destination"] == "/tmp"] == ["volume"]
    env = dict(line.split("=", 1) for line in podman(*exec_, "printenv").stdout.splitlines() if "=" in line)
    assert {key: env.get(key) for key in played.config} == played.config
    assert env["DATABASE_URL"] == played.database_url
    assert "REDIS_URL" not in env  # an optional key the Secret does not hold


def test_the_probes_and_the_api_answer(played: Played) -> None:
    """Every probe path of the Deployment answers 200 on the pod, an item makes a round trip, and the scrape path of
    the pod's annotations answers on the management port alone."""
    container = played.deployment["spec"]["template"]["spec"]["containers"][0]
    paths = [container[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")]
    waited = wait_for("ready", lambda: answers(f"{played.url}{paths[-1]}"))
    print(f"\n[figure] the played pod was ready {waited:.1f} s after kube play returned")
    assert {path: call("GET", f"{played.url}{path}")[0] for path in paths} == dict.fromkeys(paths, 200)
    status, body = call("POST", f"{played.url}/api/v1/items", {"name": "played"})
    assert status == 201, body
    assert call("GET", f"{played.url}/api/v1/items/{json.loads(body)['id']}") == (200, body)
    scrape = played.deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
    assert (call("GET", f"{played.management}{scrape}")[0], call("GET", f"{played.url}{scrape}")[0]) == (200, 404)


def test_stopping_the_pod_drains_it_to_exit_0(played: Played) -> None:
    """SIGTERM with the pod's grace period, as the kubelet sends it: a clean drain, every pool closed, exit 0."""
    wait_for("ready", lambda: answers(f"{played.url}/health/ready"))  # pooled connections to close at the end
    grace = played.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    started = time.monotonic()
    podman("stop", "--time", str(grace), played.app, timeout=grace + 30)
    stopped = time.monotonic() - started
    podman("pod", "stop", played.app_pod)
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", played.app).stdout.strip()
    print(f"\n[figure] stop: exit {exit_code} in {stopped:.1f} s (grace {grace} s)")
    assert exit_code == "0"
    said = logs(played.app)
    assert "draining" in said and "closed database pool" in said
    assert "could not close" not in said
