"""The default answers bake into a project that passes its own linters, type checks and test suite."""

from __future__ import annotations

import re
import time
from pathlib import Path

from conftest import run

UNRENDERED = re.compile(r"{{\s*cookiecutter\.|{%-?\s")


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
    run([str(default_bin / "mypy"), "src", "tests"], cwd=default_project)


def test_own_suite_passes_with_real_services(
    default_project: Path, default_bin: Path, tool_env: dict[str, str]
) -> None:
    """The baked project's whole suite passes against real PostgreSQL and Redis, none of it skipped."""
    started = time.monotonic()
    result = run(
        [str(default_bin / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=default_project,
        env={**tool_env, "REQUIRE_SERVICES": "1"},
        timeout=900,
    )
    summary = result.stdout.strip().splitlines()[-1]
    print(f"\nbaked suite: {summary} (wall {time.monotonic() - started:.0f}s)")
    assert " passed" in summary
    assert "skipped" not in summary and "failed" not in summary and "error" not in summary
