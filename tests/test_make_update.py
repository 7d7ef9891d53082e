"""`make update` in a service: from an earlier release of the template to a later one, as an owner runs it.

A clone of this repository takes two release tags of its own (the tags of the repository itself may be missing
from a fresh clone): the earlier release is HEAD with one runtime dependency less and another pool size, the
later one is HEAD again plus a new answer, ``include_greeting`` (default yes), and its CHANGELOG entry.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE, locked_venv, run
from test_update import SLUG, TOOLS, commit_project, create, edit, git, isolated_env

TEMPLATE_DEPENDENCY = '    "opentelemetry-instrumentation-redis>=0.61b0",\n'  # the last above the marker
RUNTIME_MARKER = "    # The service's own dependencies go below this line"
CONFIGMAP = "k8s/base/configmap.env"
ROUTE = '''"""Our own route, added the README's way: one more feature module."""

from fastapi import APIRouter

from . import Feature

router = APIRouter()


@router.get("/api/v1/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


feature = Feature("greetings", routers=[router])
'''

pytestmark = pytest.mark.skipif(not (TEMPLATE / ".git").exists(), reason="the template is not a git checkout")


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], str, str]:
    """A template clone with an earlier and a later release tag: (clone, env, earlier tag, later tag)."""
    folder = tmp_path_factory.mktemp("releases")
    env = isolated_env(folder)
    clone = folder / "template"
    run(["git", "clone", "-q", str(TEMPLATE), str(clone)], cwd=folder, env=env)
    released = re.findall(r"^## \[(\d+)\.\d+\.\d+\]", (clone / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
    major = max(map(int, released), default=0) + 1
    earlier, later = f"v{major}.0.0", f"v{major}.1.0"

    edit(clone / SLUG / "pyproject.toml", TEMPLATE_DEPENDENCY, "")
    edit(clone / SLUG / CONFIGMAP, "DB_POOL_SIZE=10\n", "DB_POOL_SIZE=8\n")
    git(clone, env, "commit", "-q", "-am", "the earlier release")
    git(clone, env, "tag", earlier)

    git(clone, env, "revert", "--no-edit", "HEAD")
    edit(clone / "cookiecutter.json", '  "_copy_without', '  "include_greeting": ["yes", "no"],\n  "_copy_without')
    edit(
        clone / "hooks" / "post_gen_project.py",
        '("ci", "none"): [".github"],',
        '("ci", "none"): [".github"],\n    ("include_greeting", "no"): ["docs"],',
    )
    (clone / SLUG / "docs").mkdir()
    (clone / SLUG / "docs" / "greeting.md").write_text("# Hello from {{ cookiecutter.project_name }}\n")
    changelog = clone / "CHANGELOG.md"
    entry = (
        f"## [{later[1:]}] - 2030-01-01\n\n### Answers\n- New answer `include_greeting` (default `yes`): a greeting"
        "\n  page; an updated service keeps `no`.\n\n"
    )
    changelog.write_text(re.sub(r"^(?=## \[\d)", lambda _: entry, changelog.read_text(), count=1, flags=re.MULTILINE))
    git(clone, env, "add", "-A")
    git(clone, env, "commit", "-q", "-m", "the later release")
    git(clone, env, "tag", later)
    return clone, env, earlier, later


def service(releases: tuple[Path, dict[str, str], str, str], out: Path) -> tuple[Path, dict[str, str]]:
    """A service baked by `cruft create` at the earlier release, committed; and the environment to run make in."""
    clone, env, earlier, _ = releases
    project = create(clone, out, env, {}, "--checkout", earlier)
    commit_project(project, env, "bake")
    make_env = {k: v for k, v in env.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "VIRTUAL_ENV")}
    return project, make_env


def own_venv(project: Path) -> None:
    """The service's .venv: a hard-linked copy of the shared environment of its lock, so `make install` in it
    adds only what the service's own lock adds, and the shared one stays as it is."""
    run(["cp", "-al", str(locked_venv(project).parent), str(project / ".venv")], cwd=project)


def make_update(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["make", "-s", "update"], cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    print(f"\n$ make update  (exit {done.returncode})\n{done.stdout}{done.stderr}")
    return done


def test_update_to_a_later_release_merges_the_owners_changes(
    releases: tuple[Path, dict[str, str], str, str], tmp_path: Path
) -> None:
    """`make update` takes the latest release into a service with its own route, setting, README row and
    dependency: no conflict, the dependency in the new locks, the new answer kept off, lint and locks green."""
    _, _, _, later = releases
    project, env = service(releases, tmp_path / "out")
    package = project / "src" / "orders_service"
    (package / "features" / "greetings.py").write_text(ROUTE)
    readme = project / "README.md"
    edit(
        readme,
        "| --- | --- |\n\nEvery error",
        "| --- | --- |\n| `GET /api/v1/hello` | 200, a greeting |\n\nEvery error",
    )
    edit(project / CONFIGMAP, "WEB_CONCURRENCY=2\n", "WEB_CONCURRENCY=4\n")
    with (project / CONFIGMAP).open("a") as configmap:
        configmap.write("GREETING=hello\n")
    pyproject = (project / "pyproject.toml").read_text()
    marker_line = next(line for line in pyproject.splitlines(keepends=True) if line.startswith(RUNTIME_MARKER))
    edit(project / "pyproject.toml", marker_line, marker_line + '    "babel>=2.14",\n')
    own_venv(project)
    run(["make", "-s", "lock", f"UV={project / '.venv' / 'bin' / 'uv'}"], cwd=project, env=env)
    commit_project(project, env, "our route, setting, README row and dependency")

    done = make_update(project, env)
    assert done.returncode == 0
    assert "include_greeting (default yes): this service keeps no" in done.stdout
    assert "--variables-to-update" in done.stdout
    assert f"## [{later[1:]}]" in done.stdout  # the CHANGELOG entry of the release it took
    assert "the locks match pyproject.toml" in done.stdout  # make lock-check, after make lint

    pyproject = (project / "pyproject.toml").read_text()
    assert "<<<<<<<" not in pyproject
    template_part, own_part = pyproject.split(RUNTIME_MARKER, 1)
    assert TEMPLATE_DEPENDENCY in template_part and '"babel>=2.14"' in own_part.split("]", 1)[0]
    for lock in ("runtime.txt", "dev.txt"):
        assert re.search(r"^babel==", (project / "requirements" / lock).read_text(), flags=re.MULTILINE)
        assert "opentelemetry-instrumentation-redis==" in (project / "requirements" / lock).read_text()
    state = json.loads((project / ".cruft.json").read_text())
    assert state["context"]["cookiecutter"]["include_greeting"] == "no" and state["checkout"] == later
    assert not (project / "docs").exists()
    configmap = (project / CONFIGMAP).read_text()
    assert "WEB_CONCURRENCY=4\n" in configmap and "DB_POOL_SIZE=10\n" in configmap
    assert configmap.endswith("GREETING=hello\n")
    assert "| `GET /api/v1/hello` | 200, a greeting |" in readme.read_text()
    assert (package / "features" / "greetings.py").read_text() == ROUTE
    assert git(project, env, "diff", "--name-only") == ""  # everything the update changed is staged
    assert "requirements/runtime.txt" in git(project, env, "diff", "--cached", "--name-only").splitlines()
    commit_project(project, env, "update from the template")
    assert (
        f"up to date with the template at {later}" in run(["make", "-s", "update-check"], cwd=project, env=env).stdout
    )


def test_update_names_the_file_the_owner_and_the_template_both_changed(
    releases: tuple[Path, dict[str, str], str, str], tmp_path: Path
) -> None:
    """When the owner changed a line the template changed too, `make update` fails naming that file alone,
    with the next step, and stages everything else."""
    project, env = service(releases, tmp_path / "out")
    edit(project / CONFIGMAP, "DB_POOL_SIZE=8\n", "DB_POOL_SIZE=12\n")
    commit_project(project, env, "a bigger pool")
    own_venv(project)
    check = subprocess.run(
        ["make", "-s", "update-check"], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert check.returncode != 0 and f"behind: the template is at {releases[3]}" in check.stdout

    done = make_update(project, env)
    assert done.returncode != 0
    lines = done.stdout.splitlines()
    named = lines[lines.index("conflicts: the service and the template changed the same lines in") + 1 :]
    assert named[0] == f"  {CONFIGMAP}" and named[1].startswith("next: ") and "make update-finish" in named[1]
    assert git(project, env, "diff", "--name-only", "--diff-filter=U") == CONFIGMAP
    assert set(git(project, env, "diff", "--name-only").splitlines()) == {CONFIGMAP}  # all else is staged
    assert (
        "<<<<<<< ours\nDB_POOL_SIZE=12\n=======\nDB_POOL_SIZE=10\n>>>>>>> theirs\n" in (project / CONFIGMAP).read_text()
    )

    # The next step it names: resolve, stage, make update-finish (re-lock, lint, check the locks).
    edit(
        project / CONFIGMAP,
        "<<<<<<< ours\nDB_POOL_SIZE=12\n=======\nDB_POOL_SIZE=10\n>>>>>>> theirs\n",
        "DB_POOL_SIZE=12\n",
    )
    git(project, env, "add", CONFIGMAP)
    finished = run(["make", "-s", "update-finish"], cwd=project, env=env)
    assert "the locks match pyproject.toml" in finished.stdout


def test_update_without_cruft_json_says_how_to_link(tmp_path: Path) -> None:
    """On a bake made by plain cookiecutter, the update stops with one line that says how to link it."""
    env = isolated_env(tmp_path)
    run([str(TOOLS / "cookiecutter"), "--no-input", "-o", str(tmp_path / "out"), str(TEMPLATE)], cwd=tmp_path, env=env)
    project = tmp_path / "out" / "orders-service"
    done = subprocess.run(
        [sys.executable, "scripts/update.py"], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "cruft link" in done.stderr
