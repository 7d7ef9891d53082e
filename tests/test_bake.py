"""The default answers bake into a project that passes its own linters, type checks and test suite."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TEMPLATE, answers, bake, free_port, listening, locked_venv, run, run_suite, wait_for

UNRENDERED = re.compile(r"{{\s*cookiecutter\.|{%-?\s")
# One mypy cache for every bake: mypy re-checks only what differs from a project it has seen (and what depends
# on it), so a combination costs seconds instead of a full check.
MYPY_CACHE = TEMPLATE / ".bake" / "mypy-cache"


def test_every_file_is_rendered(default_project: Path) -> None:
    """No file of the baked project still holds a cookiecutter variable or a Jinja tag."""
    leftovers = [
        str(path.relative_to(default_project))
        for path in default_project.rglob("*")
        if path.is_file() and UNRENDERED.search(path.read_text(errors="ignore"))
    ]
    assert leftovers == []


def test_paths_are_rendered(default_project: Path) -> None:
    """Folder names use the answers: the package lives at src/<package_name>."""
    assert (default_project / "src" / "orders_service" / "app.py").is_file()
    assert not [p for p in default_project.rglob("*") if "cookiecutter" in p.name]


def test_ruff_lint_and_format(default_project: Path, default_bin: Path) -> None:
    """The baked project passes ruff check and ruff format --check as generated."""
    run([str(default_bin / "ruff"), "check", "."], cwd=default_project)
    run([str(default_bin / "ruff"), "format", "--check", "."], cwd=default_project)


def test_mypy_strict(default_project: Path, default_bin: Path) -> None:
    """The baked project (source and tests) passes mypy --strict as generated."""
    run([str(default_bin / "mypy"), "--cache-dir", str(MYPY_CACHE), "src", "tests", "scripts"], cwd=default_project)


def test_pre_commit_agrees_with_make_lint(default_project: Path, default_bin: Path, tmp_path: Path) -> None:
    """The baked pre-commit configuration passes on the project as generated, and each of its hooks stops a
    commit that breaks what it checks."""
    project = Path(shutil.copytree(default_project, tmp_path / default_project.name, symlinks=True))
    (project / ".venv").symlink_to(default_bin.parent)  # the project's own environment, as `make install` makes it
    env = {**os.environ, "PRE_COMMIT_HOME": str(TEMPLATE / ".bake" / "pre-commit")}
    run(["git", "init", "-q"], cwd=project)
    run(["git", "add", "-A"], cwd=project)
    hooks = [str(default_bin / "pre-commit"), "run", "--all-files", "--show-diff-on-failure"]
    run(hooks, cwd=project, env=env)
    package = project / "src" / default_project.name.replace("-", "_")
    (package / "broken.py").write_text("import os\n\n\ndef f(x):\n    return x")  # unused, untyped, unformatted
    (project / "broken.yaml").write_text("key: [\n")
    (project / "NOTES.md").write_text("no last newline")
    run(["git", "add", "-A"], cwd=project)
    failed = subprocess.run(hooks, cwd=project, env=env, capture_output=True, text=True, check=False)
    said = {line.split(".")[0].strip() for line in failed.stdout.splitlines() if line.endswith("Failed")}
    assert said == {"ruff check", "ruff format", "mypy --strict", "check yaml", "end of files"}, failed.stdout


@pytest.mark.parametrize("edited", ["pyproject.toml", "requirements/dev.txt"])
def test_make_installs_only_when_pyproject_or_the_lock_changes(
    edited: str, default_project: Path, default_bin: Path, tmp_path: Path
) -> None:
    """A target installs first only when pyproject.toml or the dev lock is newer than the last install, and then
    installs the lock with hashes required and the project without dependencies."""
    project = Path(shutil.copytree(default_project, tmp_path / default_project.name))
    (project / ".venv").symlink_to(default_bin.parent)  # the shared environment, the project already in it
    now = time.time()
    for source in ("pyproject.toml", "requirements/dev.txt"):
        os.utime(project / source, (now - 100, now - 100))
    os.utime(default_bin.parent / ".installed", (now - 50, now - 50))
    assert "pip install" not in run(["make", "-n", "lint"], cwd=project).stdout
    os.utime(project / edited, (now, now))  # edited after the last install
    planned = run(["make", "-n", "lint"], cwd=project).stdout
    assert "pip install -q --require-hashes -r requirements/dev.txt" in planned
    assert "pip install -q --no-deps --no-build-isolation -e ." in planned


def test_make_demo_serves_and_sigterm_to_it_stops_the_server(tmp_path: Path) -> None:
    """`make demo` bakes and serves the API on PORT and the metrics on MANAGEMENT_PORT, printing both addresses;
    SIGTERM to make alone (a process manager's stop) stops the server rather than orphaning it."""
    port, management, log = free_port(), free_port(), tmp_path / "demo.log"
    command = ["make", "demo", f"DEMO_DIR={tmp_path / 'demo'}", f"PORT={port}", f"MANAGEMENT_PORT={management}"]
    with log.open("w") as out:
        make = subprocess.Popen(command, cwd=TEMPLATE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        waited = wait_for("the demo", lambda: answers(f"http://127.0.0.1:{port}/health/ready"), timeout=600)
        print(f"\n[figure] make demo answered ready after {waited:.0f} s")
        assert answers(f"http://127.0.0.1:{management}/metrics")
        assert f"http://127.0.0.1:{port}" in log.read_text() and f"http://127.0.0.1:{management}" in log.read_text()
        make.send_signal(signal.SIGTERM)
        make.wait(timeout=30)
        wait_for("the server to stop", lambda: not answers(f"http://127.0.0.1:{port}/health/live"), timeout=10)
        assert not listening(port) and not listening(management), "the server still listens after make was stopped"
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the demo's process group
            os.killpg(make.pid, signal.SIGKILL)


def test_own_suite_passes_with_real_services(
    default_project: Path, default_bin: Path, tool_env: dict[str, str]
) -> None:
    """The baked project's whole suite passes against real local PostgreSQL and Redis, none of it skipped.

    test_containers.py runs the integration and failure suites again with every server a container.
    """
    env = {**tool_env, "TEST_SERVERS": "local", "REQUIRE_SERVICES": "1"}
    run_suite("baked suite", default_bin, default_project, env)


# The default answers turn every option on but the error reports; their full suite runs in
# test_own_suite_passes_with_real_services. The minimal combination, every option off, runs its full suite too:
# without the example API and Redis the integration and failure tests still hold. The error reports' combination
# runs their tests (a local HTTP server receives the reports) beside tests/unit; every other combination runs
# the part of its suite that needs no server (tests/unit), as well as ruff and mypy.
SUITES = {"unit": ["tests/unit"], "full": [], "error-reports": ["tests/unit", "tests/error_reports"]}
EVERYTHING = {
    "include_k8s": "yes",
    "include_monitoring": "yes",
    "include_redis": "yes",
    "include_example_api": "yes",
    "include_tracing": "yes",
    "include_error_reports": "yes",
    "include_jobs": "yes",
}
NOTHING = {
    "include_k8s": "no",
    "include_monitoring": "no",
    "include_redis": "no",
    "include_example_api": "no",
    "include_tracing": "no",
    "include_error_reports": "no",
    "include_jobs": "no",
}
COMBINATIONS = [
    pytest.param({"include_k8s": "no"}, "unit", id="no-k8s"),
    pytest.param({"include_monitoring": "no"}, "unit", id="no-monitoring"),
    pytest.param({"include_redis": "no"}, "unit", id="no-redis"),
    pytest.param({"include_example_api": "no"}, "unit", id="no-example-api"),
    pytest.param({"include_tracing": "no"}, "unit", id="no-tracing"),
    pytest.param({"include_error_reports": "yes"}, "error-reports", id="error-reports"),
    pytest.param({"include_jobs": "no"}, "unit", id="no-jobs"),
    pytest.param({"include_jobs": "no", "include_example_api": "no", "include_redis": "no"}, "unit", id="no-jobs-api"),
    pytest.param({"ci": "none"}, "unit", id="no-ci"),
    pytest.param({"license": "Proprietary"}, "unit", id="proprietary"),
    pytest.param(
        {"python_version": "3.12", "port": "9000", "management_port": "8000"}, "unit", id="py312-ports-swapped"
    ),
    pytest.param({"python_version": "3.13"}, "unit", id="py313"),
    pytest.param({**NOTHING, "ci": "none", "license": "Proprietary"}, "full", id="minimal"),
    pytest.param({**EVERYTHING, "ci": "github", "license": "Apache-2.0"}, "unit", id="maximal"),
    pytest.param({"project_name": "Café Billing", "author_name": "Zoë Ö"}, "unit", id="unicode-names"),
]


@pytest.mark.parametrize(("answers", "suite"), COMBINATIONS)
def test_combination_bakes_clean(answers: dict[str, str], suite: str, tool_env: dict[str, str], tmp_path: Path) -> None:
    """Every named answer combination bakes fully rendered, passes ruff, ruff format and mypy --strict, and its suite.

    Each runs on an environment installed from its own dev lock with hashes required (combinations that lock the
    same set share one), with the combination's package first on the path; "full" means with real servers and
    nothing skipped.
    """
    project = bake(tmp_path, **answers)
    bin_dir = locked_venv(project)
    leftovers = [p.name for p in project.rglob("*") if p.is_file() and UNRENDERED.search(p.read_text(errors="ignore"))]
    assert leftovers == []
    run([str(bin_dir / "ruff"), "check", "--no-cache", "."], cwd=project)
    run([str(bin_dir / "ruff"), "format", "--check", "--no-cache", "."], cwd=project)
    run([str(bin_dir / "mypy"), "--cache-dir", str(MYPY_CACHE), "src", "tests", "scripts"], cwd=project)
    env = {**tool_env, "PYTHONPATH": str(project / "src"), "TEST_SERVERS": "local", "REQUIRE_SERVICES": "1"}
    run_suite(f"{suite} suite", bin_dir, project, env, *SUITES[suite])


@pytest.mark.parametrize(
    ("answers", "absent"),
    [
        pytest.param({"include_redis": "no"}, re.compile(r"redis", re.IGNORECASE), id="no-redis"),
        pytest.param(
            {"include_example_api": "no"}, re.compile(r"/api/v1/items|\bitems\b(?!\(\))|\bItem\b"), id="no-example-api"
        ),
        # FastAPI itself depends on opentelemetry-api, which stays in the locks, and app.py turns off its native
        # telemetry with a "tracing": False key.
        pytest.param(
            {"include_tracing": "no"},
            re.compile(r"opentelemetry(?!-api=)|\botel|traceparent|trace_id|span_id|\btracing\b(?!\":)", re.IGNORECASE),
            id="no-tracing",
        ),
        pytest.param(
            {"include_error_reports": "no"}, re.compile(r"sentry|error.reports", re.IGNORECASE), id="no-error-reports"
        ),
        pytest.param(
            {"include_jobs": "no"},
            # GitHub's workflows have a "jobs:" key; Kubernetes' migration Job and Prometheus' job label stay, and
            # the API scales with KEDA in every bake.
            re.compile(r"pgqueuer|JOBS_|\bjobs\b(?!:)|\bworker[-.](yaml|podmonitor|networkpolicy)", re.IGNORECASE),
            id="no-jobs",
        ),
    ],
)
def test_an_option_left_out_leaves_no_trace(answers: dict[str, str], absent: re.Pattern[str], tmp_path: Path) -> None:
    """Without Redis, nothing in the project names it; without the example API, nothing names its items; without
    tracing, nothing names OpenTelemetry, its variables or its ids; without the error reports, nothing names
    Sentry; without the jobs, nothing names the queue, its settings or its worker's manifests."""
    project = bake(tmp_path, **answers)
    traces = [
        f"{path.relative_to(project)}: {match.group()}"
        for path in sorted(project.rglob("*"))
        if path.is_file()
        for match in [absent.search(path.read_text(errors="ignore"))]
        if match
    ]
    assert traces == []
