"""Which backend serves the tests' servers, decided without starting anything."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests import servers, servers_docker


@pytest.mark.parametrize(
    ("docker", "local", "choice", "require", "expected"),
    [
        pytest.param(True, True, "auto", False, "containers", id="containers-preferred"),
        pytest.param(True, False, "auto", False, "containers", id="containers-only"),
        pytest.param(False, True, "auto", False, "local", id="local-only"),
        pytest.param(False, False, "auto", False, "skip", id="none-skips"),
        pytest.param(False, False, "auto", True, "fail", id="none-required-fails"),
        pytest.param(True, True, "local", False, "local", id="demand-local"),
        pytest.param(True, True, "containers", False, "containers", id="demand-containers"),
        pytest.param(True, False, "local", False, "fail", id="demanded-local-missing-fails"),
        pytest.param(False, True, "containers", False, "fail", id="demanded-containers-missing-fails"),
    ],
)
def test_select_backend(docker: bool, local: bool, choice: str, require: bool, expected: str) -> None:
    """Containers win when a Docker API answers, local binaries come next; TEST_SERVERS demands one of them."""
    assert servers.select_backend(docker=docker, local=local, choice=choice, require=require) == expected


def test_select_backend_rejects_unknown_choice() -> None:
    """A misspelt TEST_SERVERS is an error, not a silent fallback."""
    with pytest.raises(ValueError, match="TEST_SERVERS"):
        servers.select_backend(docker=True, local=True, choice="docker")


@pytest.fixture
def nothing_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "docker_available", lambda: False)
    monkeypatch.setattr(servers, "local_postgres_bindir", lambda: None)
    monkeypatch.delenv("TEST_SERVERS", raising=False)
    monkeypatch.delenv("REQUIRE_SERVICES", raising=False)


@pytest.mark.usefixtures("nothing_available")
def test_no_server_skips_with_a_way_to_get_one() -> None:
    """With neither Docker nor local binaries, a server fixture skips and says how to get one."""
    with pytest.raises(pytest.skip.Exception, match="Docker engine / podman socket"):
        servers.postgres_server()


@pytest.mark.usefixtures("nothing_available")
def test_no_server_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """With REQUIRE_SERVICES=1 a missing server fails the run instead of skipping it."""
    monkeypatch.setenv("REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_SERVICES=1"):
        servers.postgres_server()


def test_demanded_local_does_not_probe_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEST_SERVERS=local never asks for a Docker API, so a missing daemon costs nothing."""

    def probe() -> bool:
        raise AssertionError("docker probed")

    monkeypatch.setattr(servers, "docker_available", probe)
    monkeypatch.setattr(servers, "local_postgres_bindir", lambda: None)
    monkeypatch.setenv("TEST_SERVERS", "local")
    monkeypatch.delenv("REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.fail.Exception, match="TEST_SERVERS=local"):
        servers.postgres_server()


class FakeDockerContainer:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: self.calls.append(name)


class FakeTestcontainer:
    """Just the testcontainers surface that `_ContainerServer` uses, recording the Docker calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.bound: dict[int, int] = {}

    def with_bind_ports(self, inner: int, host: int) -> FakeTestcontainer:
        self.bound[inner] = host
        return self

    def start(self) -> None:
        self.calls.append("create")

    def stop(self) -> None:
        self.calls.append("remove")

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, inner: int) -> int:
        return self.bound[inner]

    def get_wrapped_container(self) -> FakeDockerContainer:
        return FakeDockerContainer(self.calls)


class ReadyContainer(servers_docker.ContainerServer):
    def ready(self) -> bool:
        return True


def test_container_handle_maps_onto_docker_calls() -> None:
    """A container handle crashes with kill, restarts on its fixed host port, and unpauses before it is removed."""
    fake = FakeTestcontainer()
    handle = ReadyContainer(fake, 5432)
    port = handle.address[1]
    handle.stop()
    handle.stop()
    handle.start()
    handle.pause()
    handle.close()
    handle.close()
    assert fake.calls == ["create", "kill", "wait", "start", "pause", "unpause", "remove"]
    assert handle.address == ("127.0.0.1", port)
