"""A connection to the service's HTTP protocol without a socket: bytes in, bytes out, timers on a fake clock.

The protocol runs as under uvicorn (the real parser, the real request cycles as tasks on the test's event loop);
only the transport and the loop's timers are stand-ins, as in uvicorn's own protocol tests.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import Any

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.lifespan.off import LifespanOff
from uvicorn.server import ServerState

from {{ cookiecutter.package_name }}.protocol import BoundedHttpToolsProtocol

GET = b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"
POST = b'POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: 18\r\n\r\n{"hello": "world"}'
CLOSE = b"GET / HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n"


class Transport:
    """What the protocol wrote, whether it half-closed, and whether it closed."""

    def __init__(self) -> None:
        self.buffer, self.eof, self.closed, self.reading = b"", False, False, True

    def get_extra_info(self, key: str) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 8001)}.get(key)

    def write(self, data: bytes) -> None:
        assert not self.closed and not self.eof, "written after the connection was closed"
        self.buffer += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: asyncio.Protocol) -> None:
        pass

    def take(self) -> bytes:
        """What was written since the last take."""
        data, self.buffer = self.buffer, b""
        return data

    def statuses(self) -> list[int]:
        """The status of each response written, in order."""
        return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", self.buffer)]


class Timer:
    def __init__(self, loop: Loop, when: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.loop, self.when, self.callback, self.args = loop, when, callback, args

    def cancel(self) -> None:
        if self in self.loop.timers:
            self.loop.timers.remove(self)


class Loop:
    """Tasks run on the real event loop; timers wait for ``advance``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []

    def create_task(self, coroutine: Coroutine[Any, Any, None], **kwargs: Any) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(coroutine, **kwargs)

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> Timer:
        timer = Timer(self, self.now + delay, callback, args)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[str]:
        return sorted(getattr(timer.callback, "__name__", "?") for timer in self.timers)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while due := [timer for timer in self.timers if timer.when <= self.now]:
            timer = min(due, key=lambda timer: timer.when)
            self.timers.remove(timer)
            timer.callback(*timer.args)


class Limits(BoundedHttpToolsProtocol):
    max_head_bytes = 4096
    max_header_fields = 20
    head_timeout = 2.0


App = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Coroutine[Any, Any, None]]


async def hello(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    body = b"Hello, world"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


Connection = tuple[BoundedHttpToolsProtocol, Transport, Loop]


def connect(server: ServerState, app: App, **config: Any) -> Connection:
    """A protocol with ``Limits``' bounds, connected; ``config`` as uvicorn's ``Config`` takes it."""
    loop, transport = Loop(), Transport()
    settings = Config(app=app, log_config=None, timeout_keep_alive=5, **config)
    protocol = Limits(config=settings, server_state=server, app_state=LifespanOff(settings).state, _loop=loop)  # type: ignore[arg-type]
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, loop


async def settle() -> None:
    """Let every request cycle run as far as it can."""
    for _ in range(20):
        await asyncio.sleep(0)
