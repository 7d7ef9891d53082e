"""The update path: a service records its answers and template commit, and pulls later template commits in.

Every test works on a clone of this repository's committed state (``git clone`` copies no uncommitted edit),
makes its template changes as new commits in that clone, and never touches the repository itself.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TEMPLATE, run
from cookiecutter.main import cookiecutter

TOOLS = Path(sys.executable).parent  # cruft and cookiecutter, from requirements-test.txt
SLUG = "{{cookiecutter.project_slug}}"

# Named answer combinations; each is baked, recorded and re-baked.
COMBINATIONS = [
    pytest.param({}, id="defaults"),
    pytest.param(
        {
            "include_k8s": "no",
            "include_monitoring": "no",
            "ci": "none",
            "license": "Apache-2.0",
            "python_version": "3.13",
        },
        id="minimal",
    ),
    pytest.param(
        {"project_name": "Billing Engine", "author_name": "Jane Roe", "port": "8080", "license": "Proprietary"},
        id="renamed",
    ),
]

pytestmark = pytest.mark.skipif(not (TEMPLATE / ".git").exists(), reason="the template is not a git checkout")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment isolated from the user's git and cookiecutter configuration, which could change answers."""
    return isolated_env(tmp_path)


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """The environment of ``env``, its configuration files in ``tmp_path``."""
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Template Tests\n\temail = tests@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    ccconfig = tmp_path / "cookiecutterrc"
    ccconfig.write_text(f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\nreplay_dir: {tmp_path / 'replay'}\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "COOKIECUTTER_", "PYTEST_"))}
    return {
        **base,
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
        "COOKIECUTTER_CONFIG": str(ccconfig),
    }


@pytest.fixture
def template(tmp_path: Path, env: dict[str, str]) -> Path:
    """A clone of the template's committed state, free to take new commits."""
    clone = tmp_path / "template"
    run(["git", "clone", "-q", str(TEMPLATE), str(clone)], cwd=tmp_path, env=env)
    return clone


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    return run(["git", *args], cwd=repo, env=env).stdout.rstrip("\n")


def cruft(cwd: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the cruft command line, as a user would; with ``check`` a non-zero exit fails the test."""
    if check:
        return run([str(TOOLS / "cruft"), *args], cwd=cwd, env=env)
    return subprocess.run([str(TOOLS / "cruft"), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def create(template: Path, out: Path, env: dict[str, str], answers: dict[str, str], *extra: str) -> Path:
    """``cruft create`` the template with ``answers``; returns the project folder."""
    out.mkdir()
    context = json.dumps(answers)
    cruft(out, env, "create", "--no-input", "--extra-context", context, "--output-dir", str(out), *extra, str(template))
    (project,) = out.iterdir()
    return project


def commit_project(project: Path, env: dict[str, str], message: str) -> None:
    if not (project / ".git").exists():
        git(project, env, "init", "-q")
    git(project, env, "add", "-A")
    git(project, env, "commit", "-q", "-m", message)


def recorded_answers(project: Path) -> dict[str, Any]:
    """The answers of .cruft.json, without the private keys that the template itself supplies."""
    context = json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]
    return {key: value for key, value in context.items() if not key.startswith("_")}


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` (but .git), with its permission bits and, for a file, its bytes."""
    return {
        path.relative_to(root).as_posix(): (
            stat.S_IMODE(path.stat().st_mode),
            path.read_bytes() if path.is_file() else None,
        )
        for path in root.rglob("*")
        if ".git" not in path.relative_to(root).parts
    }


def differences(left: dict[str, tuple[int, bytes | None]], right: dict[str, tuple[int, bytes | None]]) -> list[str]:
    return sorted(name for name in left.keys() | right.keys() if left.get(name) != right.get(name))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not exactly once in {path}"
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("answers", COMBINATIONS)
def test_rebake_from_recorded_answers_is_identical(
    tmp_path: Path, template: Path, env: dict[str, str], answers: dict[str, str]
) -> None:
    """The answers and commit in .cruft.json bake the same project again, byte for byte, .cruft.json included."""
    project = create(template, tmp_path / "first", env, answers)
    state = json.loads((project / ".cruft.json").read_text())
    assert state["template"] == str(template)
    assert state["commit"] == git(template, env, "rev-parse", "HEAD")
    assert recorded_answers(project).items() >= answers.items()

    # Plain cookiecutter, from a checkout at the recorded commit, with the recorded answers: what cruft update does.
    checkout = tmp_path / "at-commit"
    run(["git", "clone", "-q", str(template), str(checkout)], cwd=tmp_path, env=env)
    git(checkout, env, "checkout", "-q", state["commit"])
    again = Path(
        cookiecutter(
            str(checkout),
            no_input=True,
            extra_context=recorded_answers(project),
            output_dir=str(tmp_path / "again"),
            config_file=env["COOKIECUTTER_CONFIG"],
        )
    )
    expected = {name: entry for name, entry in snapshot(project).items() if name != ".cruft.json"}
    assert differences(expected, snapshot(again)) == []

    # cruft itself, asked for the recorded commit: the same files and the same .cruft.json but for that request.
    third = create(template, tmp_path / "third", env, recorded_answers(project), "--checkout", state["commit"])
    rebaked = json.loads((third / ".cruft.json").read_text())
    assert rebaked.pop("checkout") == state["commit"]
    assert rebaked == {key: value for key, value in state.items() if key != "checkout"}
    assert differences(expected, {k: v for k, v in snapshot(third).items() if k != ".cruft.json"}) == []


def test_fresh_project_is_up_to_date(tmp_path: Path, template: Path, env: dict[str, str]) -> None:
    """Right after `cruft create`, `cruft check` passes and `cruft diff` finds nothing."""
    project = create(template, tmp_path / "out", env, {"ci": "none"})
    assert "up to date" in cruft(project, env, "check").stdout
    assert "diff --git" not in cruft(project, env, "diff", "--exit-code").stdout  # exit 0: no difference


def test_update_brings_template_changes_and_keeps_local_ones(
    tmp_path: Path, template: Path, env: dict[str, str]
) -> None:
    """`cruft update -y` applies a template commit to a committed service; its own edits survive, no conflict."""
    project = create(template, tmp_path / "out", env, {"project_name": "Billing Engine"})
    commit_project(project, env, "bake")
    readme = (project / "README.md").read_text()
    (project / "README.md").write_text(readme + "\n## Local notes\n\nOur own runbook.\n")
    (project / "NOTES.md").write_text("a file the template does not have\n")
    commit_project(project, env, "local change")
    local_diff = cruft(project, env, "diff", "--exit-code", check=False)
    assert local_diff.returncode == 1 and "Our own runbook." in local_diff.stdout

    # Template commit B: a README line near the top (the local edit is at the end), a Makefile target, a new file.
    title, rest = (template / SLUG / "README.md").read_text().split("\n", 1)
    (template / SLUG / "README.md").write_text(f"{title}\n\n> Generated from the service template.\n{rest}")
    with (template / SLUG / "Makefile").open("a") as makefile:
        makefile.write(
            "\nhello:  ## a target added by the template\n\t@echo hello from {{ cookiecutter.project_slug }}\n"
        )
    (template / SLUG / "CHANGELOG.md").write_text("# {{ cookiecutter.project_name }} changelog\n")
    git(template, env, "add", "-A")
    git(template, env, "commit", "-q", "-m", "template B")
    commit_b = git(template, env, "rev-parse", "HEAD")

    assert cruft(project, env, "check", check=False).returncode == 1
    update = cruft(project, env, "update", "-y")
    status = git(project, env, "status", "--short")
    print(f"\n$ cruft update -y\n{update.stdout.strip()}\n$ git status --short\n{status}")

    readme = (project / "README.md").read_text()
    assert "> Generated from the service template." in readme.splitlines()[2]
    assert readme.endswith("## Local notes\n\nOur own runbook.\n")
    assert "@echo hello from billing-engine" in (project / "Makefile").read_text()
    assert (project / "CHANGELOG.md").read_text() == "# Billing Engine changelog\n"
    assert (project / "NOTES.md").exists()
    assert not list(project.rglob("*.rej"))
    assert "<<<<<<<" not in readme
    assert sorted(status.splitlines()) == sorted([" M .cruft.json", "A  CHANGELOG.md", "M  Makefile", "M  README.md"])
    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit_b
    assert "up to date" in cruft(project, env, "check").stdout


def test_overlapping_edits_leave_conflict_markers(tmp_path: Path, template: Path, env: dict[str, str]) -> None:
    """When the service and the template changed the same line, git's conflict markers show both sides."""
    project = create(template, tmp_path / "out", env, {})
    commit_project(project, env, "bake")
    title = (project / "README.md").read_text().splitlines()[0]
    edit(project / "README.md", title, "# Orders (our title)")
    commit_project(project, env, "local title")
    edit(
        template / SLUG / "README.md",
        "# {{ cookiecutter.project_name }}\n",
        "# {{ cookiecutter.project_name }} (new)\n",
    )
    git(template, env, "commit", "-q", "-am", "template title")

    update = cruft(project, env, "update", "-y")
    print(f"\n$ cruft update -y\n{update.stdout.strip()}\n{update.stderr.strip()}")
    assert "UU README.md" in git(project, env, "status", "--short").splitlines()
    readme = (project / "README.md").read_text()
    assert "<<<<<<< ours\n# Orders (our title)\n=======\n# Orders Service (new)\n>>>>>>> theirs\n" in readme


def test_update_can_change_an_answer(tmp_path: Path, template: Path, env: dict[str, str]) -> None:
    """`cruft update --variables-to-update` re-bakes with a new answer: answering no removes that part."""
    project = create(template, tmp_path / "out", env, {})
    commit_project(project, env, "bake")
    cruft(project, env, "update", "-y", "--variables-to-update", json.dumps({"include_k8s": "no", "ci": "none"}))
    assert not (project / "k8s").exists()
    assert not (project / ".github").exists()
    assert (project / "monitoring").is_dir()
    assert recorded_answers(project)["include_k8s"] == "no"


def test_plain_cookiecutter_bake_can_be_linked(tmp_path: Path, template: Path, env: dict[str, str]) -> None:
    """A service baked by plain cookiecutter is linked with `cruft link` and its replay answers, and is then clean."""
    out = tmp_path / "out"
    answers = ["project_name=Ledger", "include_monitoring=no", "license=Apache-2.0"]
    run(
        [str(TOOLS / "cookiecutter"), "--no-input", "--output-dir", str(out), str(template), *answers],
        cwd=tmp_path,
        env=env,
    )
    project = out / "ledger"
    assert not (project / ".cruft.json").exists()  # cookiecutter knows no commit; cruft records it

    replay = json.loads((tmp_path / "replay" / "template.json").read_text())["cookiecutter"]
    context = json.dumps({key: value for key, value in replay.items() if not key.startswith("_")})
    commit = git(template, env, "rev-parse", "HEAD")
    cruft(project, env, "link", "--no-input", "--checkout", commit, "--extra-context", context, str(template))

    assert recorded_answers(project)["include_monitoring"] == "no"
    assert json.loads((project / ".cruft.json").read_text())["commit"] == commit
    assert "diff --git" not in cruft(project, env, "diff", "--exit-code").stdout  # exit 0: no difference
