"""The `ci` and `license` answers: a GitHub Actions workflow that calls the Makefile, and the chosen LICENSE."""

from __future__ import annotations

import hashlib
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import bake, run

TOOLS = Path(sys.executable).parent  # check-jsonschema, with its vendored copy of the GitHub workflow schema
AUTHOR = "Jane Roe"
# sha256 of the license texts with the copyright line put back to its placeholders: the Apache one is the ASF's
# own LICENSE-2.0.txt, the MIT one the text of choosealicense.com / SPDX.
LICENSE_SHA256 = {
    "Apache-2.0": (
        "[yyyy] [name of copyright owner]",
        "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
    ),
    "MIT": ("<year> <copyright holders>", "24f09d6d1dc1534b8efcaca939ddec1969cac255471aae25d299ab8e81ada29f"),
}


@pytest.fixture(scope="module")
def workflow_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("ci"), python_version="3.12", port="8080")


@pytest.fixture(scope="module")
def workflow(workflow_project: Path) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((workflow_project / ".github" / "workflows" / "ci.yml").read_text())
    return loaded


def steps(workflow: dict[Any, Any], job: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return result


def test_workflow_matches_github_schema(workflow_project: Path) -> None:
    """The workflow validates against GitHub's workflow schema (SchemaStore's, vendored in check-jsonschema)."""
    path = workflow_project / ".github" / "workflows" / "ci.yml"
    run(
        [str(TOOLS / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        cwd=workflow_project,
    )


def test_dependabot_config_matches_its_schema_and_covers_every_ecosystem(workflow_project: Path) -> None:
    """Python dependencies, actions and the base image are updated weekly, in one pull request."""
    path = workflow_project / ".github" / "dependabot.yml"
    run([str(TOOLS / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(path)], cwd=workflow_project)
    config = yaml.safe_load(path.read_text())
    assert config["multi-ecosystem-groups"] == {"weekly": {"schedule": {"interval": "weekly"}}}
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    assert sorted(updates) == ["docker", "github-actions", "pip"]
    assert all(u["multi-ecosystem-group"] == "weekly" and u["patterns"] == ["*"] for u in updates.values())


def test_workflow_uses_the_answers(workflow: dict[Any, Any]) -> None:
    """CI runs the chosen Python and probes the chosen port; GitHub's own expressions survive the rendering."""
    expected = {
        "PYTHON_VERSION": "3.12",
        "IMAGE": "orders-service",
        "PORT": "8080",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    assert workflow["env"] == expected
    assert workflow["concurrency"]["group"] == "${{ github.workflow }}-${{ github.ref }}"
    for job in ("lint", "test"):
        setup = next(step for step in steps(workflow, job) if step.get("uses", "").startswith("actions/setup-python@"))
        assert setup["with"]["python-version"] == "${{ env.PYTHON_VERSION }}"


def test_workflow_jobs_call_the_makefile(workflow_project: Path, workflow: dict[Any, Any]) -> None:
    """Lint, the locks' check and the tests run the project's own make targets, which exist; the tests may not
    skip a missing server."""
    assert set(workflow["jobs"]) == {"lint", "test", "image"}
    makefile = (workflow_project / "Makefile").read_text()
    commands = {job: [step.get("run", "") for step in steps(workflow, job)] for job in workflow["jobs"]}
    assert commands["lint"][-2:] == ["make lint", "make lock-check"]
    assert commands["test"][-1] == "make test"
    for target in ("lint", "lock-check", "test"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
    assert workflow["jobs"]["test"]["env"]["REQUIRE_SERVICES"] == "1"
    image = "\n".join(commands["image"])
    assert "docker build" in image and "docker compose up" in image and "/health/ready" in image


def test_workflow_is_least_privileged_and_bounded(workflow: dict[Any, Any]) -> None:
    """The token can only read, every job has a timeout, and every action is pinned to a release."""
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 30, name
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"actions/[a-z-]+@v\d+", step["uses"]), step["uses"]


def test_ci_none_has_no_github_folder(tmp_path: Path) -> None:
    """Answering ci=none leaves out .github/."""
    project = bake(tmp_path, ci="none")
    assert not (project / ".github").exists()
    assert (project / "Makefile").exists()


@pytest.mark.parametrize("choice", ["MIT", "Apache-2.0"])
def test_open_source_license_is_the_standard_text(tmp_path: Path, choice: str) -> None:
    """The MIT and Apache-2.0 files are the standard texts, word for word, with this year and the author."""
    text = (bake(tmp_path, license=choice, author_name=AUTHOR) / "LICENSE").read_text()
    year = time.gmtime().tm_year
    holder = f"{year} {AUTHOR}"
    assert text.count(holder) == 1
    placeholder, digest = LICENSE_SHA256[choice]
    assert hashlib.sha256(text.replace(holder, placeholder).encode()).hexdigest() == digest


def test_proprietary_license_is_a_notice(tmp_path: Path) -> None:
    """A proprietary service gets a short all-rights-reserved notice naming the service and its owner."""
    text = (bake(tmp_path, license="Proprietary", author_name=AUTHOR, project_name="Ledger") / "LICENSE").read_text()
    assert text.startswith(f"Copyright (c) {time.gmtime().tm_year} {AUTHOR}. All rights reserved.\n")
    assert "(Ledger)" in text
    assert "Permission is hereby granted" not in text
    assert text.endswith(f"of {AUTHOR}.\n")
