"""Every bake ships hashed, exact locks of its dependencies, made from its own pyproject.toml.

The template keeps the locks of every combination in {{cookiecutter.project_slug}}/requirements/, refreshed by
scripts/lock; the combinations in test_bake.py install them with hashes required (conftest.locked_venv), so the
locked set is the tested set.
"""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import DEFAULTS, TEMPLATE, bake, run

LOCK_SCRIPT = runpy.run_path(str(TEMPLATE / "scripts" / "lock"))
VARIANTS: list[dict[str, str]] = LOCK_SCRIPT["VARIANTS"]
UV = str(Path(sys.executable).parent / "uv")
LOCKS = ("runtime.txt", "build.txt", "dev.txt")
LINE = re.compile(r"#.*|[a-z0-9._-]+==[^ ;\\]+( ; [^\\]+)? \\|    --hash=sha256:[0-9a-f]{64}( \\)?")


def pins(lock: str) -> list[str]:
    """The requirement lines of a lock: name==version, with the marker if any."""
    return [line.removesuffix(" \\") for line in lock.splitlines() if line[:1].isalnum()]


@pytest.mark.parametrize("answers", VARIANTS, ids=lambda answers: "-".join(answers.values()))
def test_each_combination_ships_locks_that_match_its_pyproject(answers: dict[str, str], tmp_path: Path) -> None:
    """`make lock-check` in the bake finds its locks in line with its pyproject.toml; every requirement is pinned
    exactly with at least one hash, and every line is a comment, a pin or a hash."""
    project = bake(tmp_path, **answers)
    checked = run(["make", "lock-check", f"UV={UV}"], cwd=project)
    assert "the locks match pyproject.toml" in checked.stdout
    for name in LOCKS:
        text = (project / "requirements" / name).read_text()
        # Comments, pins and their hashes, nothing else: no option line, no address.
        assert all(LINE.fullmatch(line) for line in text.splitlines()), name
        # Each requirement is followed by its hash lines, up to the next requirement.
        requirements = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2].strip())
        assert all("--hash=sha256:" in r for r in requirements), name


def test_lock_check_fails_when_pyproject_changes_and_make_lock_follows_it(tmp_path: Path) -> None:
    """A dependency added to pyproject.toml: lock-check fails, naming the fix, and leaves the locks as they were;
    `make lock` pins it (with hashes) in the runtime and dev locks and moves no other pin."""
    project = bake(tmp_path)
    locks = project / "requirements"
    before = {name: (locks / name).read_text() for name in LOCKS}
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('    "tenacity', '    "six>=1.16",\n    "tenacity', 1))
    failed = subprocess.run(
        ["make", "lock-check", f"UV={UV}"], cwd=project, capture_output=True, text=True, check=False
    )
    assert failed.returncode != 0
    assert "run make lock" in failed.stderr
    assert {name: (locks / name).read_text() for name in LOCKS} == before
    run(["make", "lock", f"UV={UV}"], cwd=project)
    for name in ("runtime.txt", "dev.txt"):
        after = pins((locks / name).read_text())
        assert [pin.split("==")[0] for pin in set(after) - set(pins(before[name]))] == ["six"], name
        assert set(pins(before[name])) <= set(after), name
    assert "six==" not in (locks / "build.txt").read_text()
    run(["make", "lock-check", f"UV={UV}"], cwd=project)


def dependency_tables(project: Path) -> dict[str, Any]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    return {
        "build-system": pyproject["build-system"]["requires"],
        "dependencies": pyproject["project"]["dependencies"],
        "optional": pyproject["project"]["optional-dependencies"],
        "groups": pyproject["dependency-groups"],
    }


def test_only_the_answers_scripts_lock_varies_change_the_dependencies(tmp_path: Path) -> None:
    """Every value of every choice, baked over the defaults, declares the dependencies of the variant of
    scripts/lock it falls in: the variants cover every combination's locks."""
    keys = {key for variant in VARIANTS for key in variant}
    expected = {}
    for i, variant in enumerate(VARIANTS):
        expected[tuple(sorted(variant.items()))] = dependency_tables(bake(tmp_path / f"variant{i}", **variant))
    for key, choices in DEFAULTS.items():
        if not isinstance(choices, list) or key.startswith("_"):
            continue
        for value in choices:
            project = bake(tmp_path / f"{key}-{value}", **{key: value})
            answers = {**{k: DEFAULTS[k][0] for k in keys}, key: value}
            variant = tuple(sorted((k, answers[k]) for k in keys))
            assert dependency_tables(project) == expected[variant], f"{key}={value}"
            shutil.rmtree(project)


def test_the_build_group_pins_the_build_backend(default_project: Path) -> None:
    """requirements/build.txt locks the build group, which asks for what [build-system] requires."""
    tables = dependency_tables(default_project)
    assert tables["groups"]["build"] == tables["build-system"]
    assert "hatchling==" in (default_project / "requirements" / "build.txt").read_text()


def test_the_readme_names_the_versions_a_bake_pins(default_project: Path) -> None:
    """The template README's line of pinned versions is the default bake's, as scripts/lock last wrote it."""
    readme = (TEMPLATE / "README.md").read_text()
    line = readme.split("<!-- pins: scripts/lock writes this line -->\n")[1].splitlines()[0]
    assert line + "\n" == LOCK_SCRIPT["direct_pins"](default_project)
