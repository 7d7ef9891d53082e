"""`make new`: one command bakes a service of the user's with cruft, into the folder they choose."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MAKE_ENV

TEMPLATE = Path(__file__).resolve().parents[1]
CRUFT = Path(sys.executable).parent / "cruft"


def make_new(*variables: str) -> subprocess.CompletedProcess[str]:
    command = ["make", "--no-print-directory", "-C", str(TEMPLATE), "new", *variables]
    return subprocess.run(command, env=MAKE_ENV, capture_output=True, text=True, timeout=300, check=False)


def test_make_new_bakes_with_cruft_into_the_chosen_folder(tmp_path: Path) -> None:
    """`make new NAME=... DIR=...` bakes the template's last commit into DIR, records it and the answers in
    `.cruft.json`, prints next steps that start with the right folder, and `cruft check` then finds it current."""
    result = make_new("NAME=Billing API", f"DIR={tmp_path}", "ANSWERS=include_k8s=no")
    assert result.returncode == 0, result.stdout + result.stderr
    project = tmp_path / "billing-api"
    recorded = json.loads((project / ".cruft.json").read_text())
    head = subprocess.run(["git", "-C", str(TEMPLATE), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert recorded["commit"] == head.stdout.strip()
    answers = recorded["context"]["cookiecutter"]
    assert (answers["project_name"], answers["package_name"], answers["include_k8s"]) == (
        "Billing API",
        "billing_api",
        "no",
    )
    assert not (project / "k8s").exists()
    assert f"  cd {project}\n  git init" in result.stdout
    git = ["git", "-C", str(project), "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "Bake from the service template"]):
        subprocess.run([*git, *step], check=True, capture_output=True)
    check = subprocess.run([str(CRUFT), "check"], check=False, cwd=project, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    diff = subprocess.run([str(CRUFT), "diff", "--exit-code"], check=False, cwd=project, capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "Next steps" not in diff.stdout  # cruft's scratch re-bake prints none


@pytest.mark.parametrize(
    ("variables", "line"),
    [
        pytest.param(
            ["NAME=x", "ANSWERS=python_version=3.10"],
            "error: python_version: '3.10' must be one of 3.11, 3.12, 3.13",
            id="choice",
        ),
        pytest.param(["NAME=!!!"], "error: project_name: '!!!' makes the project_slug ''", id="name"),
        pytest.param(["NAME=x", "ANSWERS=colour=red"], "error: 'colour' is not a question of this template", id="key"),
        pytest.param(
            ["NAME=x", "DIR=/nonexistent/folder"], "error: DIR '/nonexistent/folder' is not a folder", id="dir"
        ),
    ],
)
def test_make_new_refuses_in_one_line(tmp_path: Path, variables: list[str], line: str) -> None:
    """A bad answer or folder is one line naming it, with no traceback, and nothing baked."""
    result = make_new(f"DIR={tmp_path}", *variables)
    assert result.returncode != 0
    own = [text for text in result.stderr.splitlines() if not text.startswith(("make: ***", "note: "))]
    assert len(own) == 1 and own[0].startswith(line), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_make_new_refuses_a_folder_that_exists(tmp_path: Path) -> None:
    """A service folder already in DIR is left alone, with one line saying so."""
    (tmp_path / "x").mkdir()
    result = make_new("NAME=x", f"DIR={tmp_path}")
    assert result.returncode != 0
    assert f"error: the service's folder is already in {tmp_path}" in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "x"]
