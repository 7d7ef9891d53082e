"""Servers as containers through testcontainers, for tests/servers.py: PostgreSQL here, and the base of the others."""

from __future__ import annotations

import atexit
import importlib
import os
import time
from typing import Any

from tests.servers import docker_host
from tests.servers_local import PASSWORD, free_port

# The image docker-compose.yml runs; POSTGRES_IMAGE overrides it.
POSTGRES_IMAGE = "postgres:16-bookworm"


class ContainerServer:
    """A testcontainers container with its port bound to a fixed free host port, so `url` survives a restart."""

    def __init__(self, container: Any, inner_port: int) -> None:
        self.inner_port = inner_port
        self.container = container.with_bind_ports(inner_port, free_port())
        self.container.start()
        self._running, self._paused, self._closed = True, False, False
        atexit.register(self.close)
        try:
            self.address = self._read_address()
        except BaseException:
            self.close()
            raise

    def _read_address(self) -> tuple[str, int]:
        # Read after every start (the mapping is fixed here, but an engine may still remap), never while paused:
        # testcontainers waits for the "running" status first.
        return self.container.get_container_host_ip(), int(self.container.get_exposed_port(self.inner_port))

    def ready(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        if not self._running:
            return
        self.resume()
        docker_container = self.container.get_wrapped_container()
        docker_container.kill()  # SIGKILL: a crash, not a clean shutdown
        docker_container.wait(timeout=30)
        self._running = False

    def start(self) -> None:
        if self._running:
            return
        self.container.get_wrapped_container().start()
        self._running = True
        self.address = self._read_address()
        deadline = time.monotonic() + 60
        while not self.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} did not become ready after a restart")
            time.sleep(0.1)

    def pause(self) -> None:
        if self._running and not self._paused:
            self.container.get_wrapped_container().pause()
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self.container.get_wrapped_container().unpause()
            self._paused = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.resume()
        finally:
            self.container.stop()  # removes the container and its volumes


class ContainerPostgres(ContainerServer):
    def __init__(self) -> None:
        image = os.environ.get("POSTGRES_IMAGE", POSTGRES_IMAGE)
        module = testcontainers_module("postgres")
        container = module.PostgresContainer(image, username="postgres", password=PASSWORD, dbname="app", driver=None)
        super().__init__(container, 5432)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"postgresql://postgres:{PASSWORD}@{host}:{port}/app"

    @property
    def admin_url(self) -> str:
        return self.url.rpartition("/")[0] + "/postgres"

    def ready(self) -> bool:
        check = f"PGPASSWORD={PASSWORD} psql -h 127.0.0.1 -U postgres -d app -c 'select 1'"
        return int(self.container.exec(["sh", "-c", check]).exit_code) == 0


def testcontainers_module(name: str) -> Any:
    """testcontainers.community.<name> (4.10+), else the older testcontainers.<name>; found sockets are exported."""
    if (host := docker_host()) is not None:
        os.environ.setdefault("DOCKER_HOST", host)
    try:
        return importlib.import_module(f"testcontainers.community.{name}")
    except ImportError:
        return importlib.import_module(f"testcontainers.{name}")
