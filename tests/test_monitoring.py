"""The alert rules and the dashboard of the default bake: valid, tested, and about metrics the service exposes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run

# Series that other exporters write; every other name in the rules and the dashboard must be in a scrape.
EXTERNAL = {
    "kube_deployment_status_replicas_unavailable",  # kube-state-metrics
    # The job worker's own /metrics, not the API's (tests/jobs reads them from a real worker).
    "jobs_oldest_queued_age_seconds",
    "jobs_processed_total",
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is missing: install Debian's prometheus package (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def rules(default_project: Path) -> dict[str, Any]:
    return yaml.safe_load((default_project / "monitoring" / "prometheus" / "alerts.yml").read_text())


@pytest.fixture(scope="module")
def dashboard(default_project: Path) -> dict[str, Any]:
    return json.loads((default_project / "monitoring" / "grafana" / "dashboard.json").read_text())


def test_alert_rules_pass_promtool(default_project: Path, promtool: str) -> None:
    """promtool accepts the alert rules, and their unit tests fire exactly the expected alerts."""
    folder = default_project / "monitoring" / "prometheus"
    run([promtool, "check", "rules", "alerts.yml"], cwd=folder)
    run([promtool, "test", "rules", "alerts.test.yml"], cwd=folder)


def test_prometheusrule_holds_the_same_rules(default_project: Path, rules: dict[str, Any]) -> None:
    """The PrometheusRule for the operator carries exactly the groups of alerts.yml."""
    resource = yaml.safe_load((default_project / "monitoring" / "prometheus" / "prometheusrule.yaml").read_text())
    assert (resource["apiVersion"], resource["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert resource["metadata"]["name"] == default_project.name
    assert resource["spec"]["groups"] == rules["groups"]


def test_podmonitor_scrapes_the_management_port(default_project: Path, rules: dict[str, Any]) -> None:
    """The PodMonitor selects the Deployment's pods, scrapes the container port named for MANAGEMENT_PORT on the
    annotations' path, and gives the job the rules select."""
    monitor = yaml.safe_load((default_project / "monitoring" / "prometheus" / "podmonitor.yaml").read_text())
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    base = default_project / "k8s" / "base"
    pod = yaml.safe_load((base / "deployment.yaml").read_text())["spec"]["template"]
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    ports = {port["name"]: port["containerPort"] for port in pod["spec"]["containers"][0]["ports"]}
    configured = [
        line for line in (base / "configmap.env").read_text().splitlines() if line.startswith("MANAGEMENT_PORT=")
    ]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert configured == [f"MANAGEMENT_PORT={ports[endpoint['port']]}"]
    assert annotations["prometheus.io/port"] == str(ports[endpoint["port"]])
    assert endpoint["path"] == annotations["prometheus.io/path"] == "/metrics"
    job = labels[monitor["spec"]["jobLabel"]]
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    worker = f'job="{job}-worker"'  # the job worker's rules, scraped by worker-podmonitor.yaml
    assert all(f'job="{job}"' in expr or worker in expr for expr in exprs if "job=" in expr)
    assert any(f'job="{job}"' in expr for expr in exprs)


def test_worker_podmonitor_scrapes_the_worker(default_project: Path, rules: dict[str, Any]) -> None:
    """The worker's PodMonitor selects the worker's pods, scrapes its metrics port (JOBS_PORT) on the annotations'
    path, and gives the job label that the jobs' rules and the worker's ScaledObject select."""
    monitor = yaml.safe_load((default_project / "monitoring" / "prometheus" / "worker-podmonitor.yaml").read_text())
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    base = default_project / "k8s" / "base"
    pod = yaml.safe_load((base / "worker-deployment.yaml").read_text())["spec"]["template"]
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    ports = {port["name"]: port["containerPort"] for port in pod["spec"]["containers"][0]["ports"]}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert annotations["prometheus.io/port"] == str(ports[endpoint["port"]])
    assert endpoint["path"] == annotations["prometheus.io/path"] == "/metrics"
    job = f'job="{labels[monitor["spec"]["jobLabel"]]}"'
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"] if "jobs_" in rule["expr"]]
    scaled = yaml.safe_load((base / "worker-scaledobject.yaml").read_text())["spec"]["triggers"]
    exprs += [trigger["metadata"]["query"] for trigger in scaled]
    assert exprs and all(job in expr for expr in exprs)


@pytest.mark.parametrize("name", ["dashboard.json", "jobs-dashboard.json"])
def test_dashboard_is_plain_grafana_json(default_project: Path, name: str) -> None:
    """Each dashboard is copied unrendered: one data source variable, unique panel ids, a query in every panel."""
    dashboard = json.loads((default_project / "monitoring" / "grafana" / name).read_text())
    text = json.dumps(dashboard)
    assert "cookiecutter" not in text and "{%" not in text
    assert [v["type"] for v in dashboard["templating"]["list"]][:1] == ["datasource"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions, keywords or labels."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        if match.group() not in PROMQL_WORDS and not expr[match.end() :].lstrip().startswith("("):
            names.add(match.group())
    return names


def used_names(rules: dict[str, Any], dashboard: dict[str, Any]) -> set[str]:
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    names = set().union(*(metric_names(e) for e in exprs))
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition", "")
        names |= set(re.findall(r"label_values\(\s*([\w:]+)\s*,", query))
    return names


def test_metric_name_extraction() -> None:
    """The name extraction finds selectors and skips functions, aggregations, label lists and ranges."""
    expr = 'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x", le=~"1"}[5m]))) / ignoring(pod) b > bool 1'
    assert metric_names(expr) == {"a_bucket", "b"}
    assert metric_names("max by (dependency) (breaker_state{job='$job'}) == 2") == {"breaker_state"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def serving(cmd: list[str], env: dict[str, str], cwd: Path) -> Iterator[tuple[str, str]]:
    """Run the service on free ports until the block ends, then stop it with SIGTERM; yields its base URLs, the
    API's and the management port's."""
    port, management = free_port(), free_port()
    env = {"PATH": os.environ["PATH"], **env, "PORT": str(port), "MANAGEMENT_PORT": str(management)}
    log_path = cwd / "service.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if call("GET", f"{base}/health/live")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
            time.sleep(0.1)
        yield base, f"http://127.0.0.1:{management}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scrape(base: str, management: str) -> str:
    """A scrape of the management port, the one Prometheus is pointed at; the API port has no /metrics."""
    assert call("GET", f"{base}/metrics")[0] == 404
    status, body = call("GET", f"{management}/metrics")
    assert status == 200
    return body.decode()


def sample_names(exposition: str) -> set[str]:
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in exposition.splitlines() if line and line[0] != "#"}


@pytest.fixture(scope="module")
def scrapes(default_bin: Path, default_project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two real scrapes: gunicorn's workers after item traffic, and one process during a database outage."""
    package = next(p.name for p in (default_project / "src").iterdir() if (p / "__init__.py").exists())
    healthy = tmp_path_factory.mktemp("healthy")
    env = {
        "DATABASE_URL": f"sqlite:///{healthy / 'items.db'}",
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(healthy / "metrics"),
        "XDG_RUNTIME_DIR": str(healthy),  # gunicorn's control socket
    }
    run([str(default_bin / "python"), "-m", package, "migrate"], cwd=healthy, env={"PATH": os.environ["PATH"], **env})
    gunicorn = [str(default_bin / "gunicorn"), "-c", str(default_project / "gunicorn.conf.py")]
    with serving(gunicorn, env, healthy) as (base, management):
        items = f"{base}/api/v1/items"
        for n in range(4):
            status, body = call("POST", items, {"name": f"item {n}"})
            assert status == 201, body
            item_id = json.loads(body)["id"]
            assert [call("GET", f"{items}/{item_id}")[0] for _ in range(2)] == [200, 200]
        assert call("GET", f"{items}/999999")[0] == 404
        assert call("GET", f"{items}?limit=2")[0] == 200
        assert call("POST", items, {"nope": 1})[0] == 422
        time.sleep(1.2)  # the metrics sampler runs every 0.5 s
        healthy_text = scrape(base, management)

    outage = tmp_path_factory.mktemp("outage")
    env = {
        "DATABASE_URL": f"postgresql://app:app@127.0.0.1:{free_port()}/app",  # nothing listens there
        "DB_BREAKER_MINIMUM_CALLS": "2",
        "DB_RETRY_ATTEMPTS": "1",
    }
    with serving([str(default_bin / "python"), "-m", package, "serve"], env, outage) as (base, management):
        statuses = {call("GET", f"{base}/api/v1/items/{n}")[0] for n in range(1, 7)}
        assert statuses == {503}, statuses
        outage_text = scrape(base, management)
    return {"healthy": healthy_text, "outage": outage_text}


def test_rules_and_dashboard_use_real_metric_names(
    rules: dict[str, Any], dashboard: dict[str, Any], scrapes: dict[str, str]
) -> None:
    """Every metric the rules and the dashboard query is in a real scrape of the service, or a listed external one."""
    used = used_names(rules, dashboard)
    assert len(used) >= 15 and {"kube_deployment_status_replicas_unavailable"} <= used
    scraped = set().union(*(sample_names(text) for text in scrapes.values()))
    assert sorted(used - scraped - EXTERNAL) == []


def test_open_breaker_scrapes_as_state_two(scrapes: dict[str, str]) -> None:
    """During a database outage the database breaker reports 2 (open), the value CircuitBreakerOpen alerts on."""
    outage = scrapes["outage"]
    assert re.search(r'^breaker_state\{dependency="database"\} 2\.0$', outage, re.MULTILINE), outage
    assert re.search(r'^breaker_transitions_total\{[^}]*to_state="open"[^}]*\} [1-9]', outage, re.MULTILINE)
    assert re.search(r'^breaker_state\{dependency="database"\} 0\.0$', scrapes["healthy"], re.MULTILINE)


JOBS_SCRIPT = """
from prometheus_client import CollectorRegistry, generate_latest
from {package}.features.jobs.metrics import OUTCOMES, JobMetrics
registry = CollectorRegistry()
metrics = JobMetrics(registry)
metrics.depth.labels("queued").set(3)
metrics.oldest.set(1.5)
for outcome in OUTCOMES:
    metrics.ran("example", outcome, 0.2)
print(generate_latest(registry).decode())
"""


def test_jobs_dashboard_uses_the_workers_metric_names(default_bin: Path, default_project: Path, tmp_path: Path) -> None:
    """Every metric the jobs dashboard queries is in a real exposition of the worker's job metrics."""
    package = next(p.name for p in (default_project / "src").iterdir() if (p / "__init__.py").exists())
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(default_project / "src")}
    exposition = run([str(default_bin / "python"), "-c", JOBS_SCRIPT.format(package=package)], cwd=tmp_path, env=env)
    jobs = json.loads((default_project / "monitoring" / "grafana" / "jobs-dashboard.json").read_text())
    used = used_names({"groups": []}, jobs)
    assert {"jobs_queue_depth", "jobs_oldest_queued_age_seconds"} <= used
    assert used - EXTERNAL <= sample_names(exposition.stdout)
