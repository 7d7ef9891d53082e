"""The container path: podman's Docker API with stand-in images, and the baked suites run through it.

`scripts/container-sandbox` installs and configures podman, builds `postgres` and `redis` images from Debian's
packages under the tags the baked tests name, and serves the Docker API. The baked service's integration and
failure suites then run with TEST_SERVERS=containers: every server is a container, crashed, restarted, paused
and resumed through the Docker API (test_bake.py runs the same suites on local processes).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SANDBOX as SCRIPT
from conftest import TEMPLATE, run, run_suite, sandbox


def script_tag(kind: str) -> str:
    match = re.search(rf'^{kind}_IMAGE="\$\{{{kind}_IMAGE:-([^}}]+)\}}"', SCRIPT.read_text(), re.MULTILINE)
    assert match, f"no {kind}_IMAGE default in {SCRIPT.name}"
    return match.group(1)


def test_scripts_pass_shellcheck() -> None:
    """The sandbox script and the stand-in entrypoint pass shellcheck at every severity."""
    scripts = [SCRIPT, TEMPLATE / "scripts" / "images" / "postgres" / "entrypoint.sh"]
    run([str(Path(sys.executable).parent / "shellcheck"), "--severity=style", *map(str, scripts)], cwd=TEMPLATE)


def test_stand_ins_carry_the_tags_the_baked_tests_and_compose_name(default_project: Path) -> None:
    """The script builds exactly the images the baked tests ask for, and those are the ones compose runs."""
    compose = (default_project / "docker-compose.yml").read_text()
    for kind, module in (("POSTGRES", "servers_docker.py"), ("REDIS", "redis_cache/servers.py")):
        tests = (default_project / "tests" / module).read_text()
        match = re.search(rf'^{kind}_IMAGE = "([^"]+)"', tests, re.MULTILINE)
        assert match, f"no {kind}_IMAGE in the baked tests/{module}"
        assert script_tag(kind) == f"docker.io/library/{match.group(1)}"
        assert f"image: {match.group(1)}\n" in compose


def test_a_second_run_reuses_everything(container_env: dict[str, str]) -> None:
    """Once built and serving, the script builds nothing, starts nothing, and prints the same exports."""
    env, said, seconds = sandbox()
    print(f"\nsecond run: {seconds:.2f}s")
    assert env == container_env
    assert "building" not in said and "serving" not in said and "installing" not in said
    assert said.count("reusing") == 3


@pytest.fixture
def postgres_container(container_env: dict[str, str]) -> Iterator[str]:
    name = f"stand-in-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["podman", "rm", "--force", "--time", "0", name], capture_output=True, check=False)


READY = "database system is ready to accept connections"


def test_postgres_stand_in_keeps_the_official_contract(postgres_container: str) -> None:
    """User, password and database come from the variables; the ready line appears once, when TCP is served."""
    env = ["-e", "POSTGRES_USER=owner", "-e", "POSTGRES_PASSWORD=s3cret", "-e", "POSTGRES_DB=shop"]
    run(["podman", "run", "--detach", "--name", postgres_container, *env, script_tag("POSTGRES")], cwd=TEMPLATE)
    deadline = time.monotonic() + 60
    while READY not in (logs := run(["podman", "logs", postgres_container], cwd=TEMPLATE)).stdout + logs.stderr:
        assert time.monotonic() < deadline, f"no ready line within 60 s:\n{logs.stdout}{logs.stderr}"
        time.sleep(0.2)
    assert (logs.stdout + logs.stderr).count(READY) == 1
    query = "PGPASSWORD=s3cret psql -h 127.0.0.1 -U owner -d shop -Atc 'select current_user, current_database()'"
    answer = run(["podman", "exec", postgres_container, "sh", "-c", query], cwd=TEMPLATE)
    assert answer.stdout.strip() == "owner|shop"
    wrong = query.replace("s3cret", "wrong")
    command = ["podman", "exec", postgres_container, "sh", "-c", wrong]
    refused = subprocess.run(command, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "password authentication failed" in refused.stderr


@pytest.mark.usefixtures("container_env")
def test_postgres_stand_in_refuses_to_start_without_a_password() -> None:
    """As the official image: no POSTGRES_PASSWORD, no server."""
    result = subprocess.run(
        ["podman", "run", "--rm", script_tag("POSTGRES")], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD is required" in result.stderr


def test_baked_suites_pass_on_containers(
    default_project: Path, default_bin: Path, tool_env: dict[str, str], container_env: dict[str, str]
) -> None:
    """The baked integration, failure and Redis suites pass with every server a container, none of them skipped."""
    env = {**tool_env, **container_env, "TEST_SERVERS": "containers", "REQUIRE_SERVICES": "1"}
    suites = ["tests/integration", "tests/failures", "tests/redis_cache"]
    run_suite("baked suites on containers", default_bin, default_project, env, *suites)
