"""A new part of a service is one module: dropped into a bake's features/, it plugs into every hook a part has
(settings, models, router, command, lifespan, request watcher, error hook) without an edit anywhere else, and
taken out again it leaves no trace."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from conftest import TEMPLATE, run, run_suite

PARTS = TEMPLATE / "tests" / "parts"
IGNORED = [".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"]


def differences(left: Path, right: Path) -> list[str]:
    """Paths that differ between two folders, or are in one only."""
    compared = filecmp.dircmp(left, right, ignore=IGNORED)
    found: list[str] = []

    def walk(node: filecmp.dircmp[str], prefix: str) -> None:
        found.extend(f"{prefix}{name}" for name in node.left_only + node.right_only + node.diff_files)
        for name, child in node.subdirs.items():
            walk(child, f"{prefix}{name}/")

    walk(compared, "")
    return found


def test_a_part_is_one_module(
    default_project: Path, default_bin: Path, tool_env: dict[str, str], tmp_path: Path
) -> None:
    """With features/audit.py (and its test) added, the bake passes ruff, mypy --strict and the part's test, which
    reaches each hook; removed again, the project is the bake as it was."""
    copy = shutil.ignore_patterns(*IGNORED)
    project = Path(shutil.copytree(default_project, tmp_path / default_project.name, ignore=copy))
    package = default_project.name.replace("-", "_")
    module = project / "src" / package / "features" / "audit.py"
    test = project / "tests" / "test_audit.py"
    shutil.copy(PARTS / "audit.py", module)
    test.write_text((PARTS / "test_audit.py").read_text().replace("PACKAGE", package))
    run([str(default_bin / "ruff"), "check", "."], cwd=project)
    run([str(default_bin / "ruff"), "format", "--check", "."], cwd=project)
    run([str(default_bin / "mypy"), "src", "tests"], cwd=project)
    env = {**tool_env, "PYTHONPATH": str(project / "src")}
    run_suite("the audit part", default_bin, project, env, "tests/test_audit.py", "tests/unit/test_imports.py")
    module.unlink()
    test.unlink()
    assert differences(default_project, project) == []
