"""What `make test` may do to the machine: the container path runs only when the user or CI asks for it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import MAKE_ENV, containers_allowed

TEMPLATE = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("env", "allowed"),
    [
        pytest.param({}, False, id="nothing-said"),
        pytest.param({"CONTAINERS": "1"}, True, id="asked"),
        pytest.param({"CI": "true"}, True, id="ci"),
        pytest.param({"CI": "true", "CONTAINERS": "0"}, False, id="ci-told-no"),
        pytest.param({"CONTAINERS": "yes"}, False, id="only-1-asks"),
    ],
)
def test_the_container_path_runs_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], allowed: bool
) -> None:
    """CONTAINERS=1 allows the container path, CI=true allows it unless CONTAINERS says otherwise, nothing else does."""
    for name in ("CI", "CONTAINERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert containers_allowed() is allowed


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        pytest.param(["CI=true"], "scripts/container-sandbox plan", id="ci-announces-the-plan"),
        pytest.param(["CI=", "CONTAINERS=0"], "the container path is off", id="off-says-what-is-skipped"),
    ],
)
def test_make_test_says_first_what_the_container_path_will_do(variables: list[str], said: str) -> None:
    """Before pytest starts, `make test` prints the sandbox's plan when the path is on, and what it skips when off."""
    dry = subprocess.run(
        ["make", "-n", "-C", str(TEMPLATE), "test", "-o", "venv", *variables],
        env=MAKE_ENV, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    commands = dry.stdout.split("python -m pytest")[0]
    assert said in commands


def test_ci_asks_for_the_container_path() -> None:
    """.ci/run opts in, so CI runs the container tests rather than skipping them."""
    assert "CONTAINERS=1 make test" in (TEMPLATE / ".ci" / "run").read_text()


def test_the_plan_changes_nothing_and_names_what_it_would_install() -> None:
    """`scripts/container-sandbox plan` exits 0, as any user, and names each package or image it would bring."""
    plan = subprocess.run(
        [str(TEMPLATE / "scripts" / "container-sandbox"), "plan"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "postgres:16-bookworm" in plan.stderr
    assert "will install" in plan.stderr or "installs nothing" in plan.stderr
