"""Redis for tests, behind tests/servers.py's `ServerHandle`: a local redis-server or a container.

`redis_server()` picks its backend as `postgres_server()` does (TEST_SERVERS, REQUIRE_SERVICES, REDIS_IMAGE).
Redis runs without persistence, so a stop (SIGKILL) loses its keys, as a crashed cache would.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from tests.servers import ServerHandle, choose
from tests.servers_docker import ContainerServer, testcontainers_module
from tests.servers_local import LocalServer

# The image docker-compose.yml runs; REDIS_IMAGE overrides it.
REDIS_IMAGE = "redis:7-bookworm"


def redis_server() -> ServerHandle:
    binary = shutil.which("redis-server")
    if choose("Redis (redis-server)", binary is not None) == "containers":
        return ContainerRedis()
    assert binary is not None  # narrowed by choose
    return LocalRedis(Path(binary))


class LocalRedis(LocalServer):
    def __init__(self, binary: Path) -> None:
        super().__init__("redis")
        self.binary = binary
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.dir), "--daemonize", "no", "--protected-mode", "no",
        ]  # fmt: skip

    def ready(self) -> bool:
        return redis_ping("127.0.0.1", self.port)


class ContainerRedis(ContainerServer):
    def __init__(self) -> None:
        image = os.environ.get("REDIS_IMAGE", REDIS_IMAGE)
        super().__init__(testcontainers_module("redis").RedisContainer(image), 6379)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"redis://{host}:{port}/0"

    def ready(self) -> bool:
        return redis_ping(*self.address)


def redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
