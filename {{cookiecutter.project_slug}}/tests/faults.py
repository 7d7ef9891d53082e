"""A small asyncio TCP proxy that puts network faults between the service and a server.

    async with FaultProxy.for_url(postgres.url) as proxy:
        engine = create_async_engine(proxy.url_for(postgres.url))
        proxy.latency(0.2)   # or blackhole(), reset(), down(); pass_through() / up() recover

Modes change at any time and apply to open connections too. From sync code (a gunicorn subprocess connecting
through the proxy), `with proxy.run_in_thread():` serves it on a background thread; the mode setters can then
be called from the test's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Literal, Self
from urllib.parse import urlsplit

Mode = Literal["pass_through", "latency", "blackhole", "reset", "down"]


def address_of(url: str) -> tuple[str, int]:
    """The host and port a server's URL points at."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{url!r} has no host:port to proxy")
    return parts.hostname, parts.port


@contextlib.contextmanager
def on_a_thread(
    start: Callable[[], Coroutine[Any, Any, None]], stop: Callable[[], Coroutine[Any, Any, None]], name: str
) -> Iterator[None]:
    """Await ``start()`` on an event loop of a background thread of its own, run the block, then await ``stop()``."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=5)
        yield
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


def proxied(url: str, port: int) -> str:
    """`url` with its host:port replaced by 127.0.0.1:`port` (credentials, path and query kept)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}".lstrip("@")).geturl()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port  # 0 picks a free port on start(); kept afterwards, so up() listens on the same one
        self.mode: Mode = "pass_through"
        self._delay = (0.0, 0.0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._links: dict[asyncio.Task[None], list[asyncio.StreamWriter]] = {}

    @classmethod
    def for_url(cls, url: str) -> FaultProxy:
        return cls(*address_of(url))

    def url_for(self, url: str) -> str:
        return proxied(url, self.port)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._flowing = asyncio.Event()
        self._set(self.mode)

    async def stop(self) -> None:
        self._apply(lambda: self._close(listener=True, rst=False))
        tasks = [*self._links, *([self._acceptor] if self._acceptor else [])]
        if tasks:
            await asyncio.wait(tasks)
        self._loop = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def pass_through(self) -> None:
        self._set("pass_through")

    def up(self) -> None:
        self._set("pass_through")

    def latency(self, seconds: float, jitter: float = 0.0) -> None:
        """Delay every chunk by `seconds` (+ up to `jitter`) in each direction: a round trip gains twice that."""
        self._delay = (seconds, jitter)
        self._set("latency")

    def blackhole(self) -> None:
        """Accept, forward nothing: requests hang until the client's own timeout; pass_through() delivers them."""
        self._set("blackhole")

    def reset(self) -> None:
        """Abort open connections and every new one with a TCP RST."""
        self._set("reset")

    def down(self) -> None:
        """Stop listening (connects are refused) and drop open connections."""
        self._set("down")

    @contextlib.contextmanager
    def run_in_thread(self) -> Iterator[Self]:
        """Serve on a background thread with its own event loop, for sync tests and subprocess clients."""
        with on_a_thread(self.start, self.stop, f"fault-proxy-{self.target[1]}"):
            yield self

    def _set(self, mode: Mode) -> None:
        self.mode = mode

        def change() -> None:
            if mode == "blackhole":
                self._flowing.clear()
            else:
                self._flowing.set()
            if mode in ("reset", "down"):
                self._close(listener=mode == "down", rst=mode == "reset")
            if mode != "down" and self._listener is None:
                self._listen()

        self._apply(change)

    def _apply(self, change: Callable[[], None]) -> None:
        """Run `change` on the proxy's loop: directly when on it (or not started), else from here, waiting."""
        loop = self._loop
        if loop is None:
            return  # not started: start() applies self.mode
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            change()
            return

        async def run() -> None:
            change()

        asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=5)

    def _listen(self) -> None:
        assert self._loop is not None
        self._listener = socket.create_server(("127.0.0.1", self.port))  # listening now: no window of refusals
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._acceptor = self._loop.create_task(self._accept(self._listener))

    async def _accept(self, listener: socket.socket) -> None:
        assert self._loop is not None
        while True:
            conn, _ = await self._loop.sock_accept(listener)
            if self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            # asyncio only disables Nagle when proto == IPPROTO_TCP, and accepted sockets have proto 0: 40 ms stalls
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._links[self._loop.create_task(self._link(conn))] = []

    def _close(self, *, listener: bool, rst: bool) -> None:
        if listener and self._listener is not None and self._loop is not None and self._acceptor is not None:
            self._acceptor.cancel()
            self._loop.remove_reader(self._listener.fileno())  # before close(): the fd number may be reused
            self._listener.close()
            self._listener = None
        for task, writers in list(self._links.items()):
            for writer in writers:
                _abort(writer, rst=rst)
            task.cancel()

    async def _link(self, conn: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None
        writers = self._links[task]
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
            writers.append(writer)
            await self._flowing.wait()  # a blackholed connect never reaches the server
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            writers.append(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except OSError:
            pass  # the server refused: the client sees its connection close
        finally:
            for each in self._links.pop(task):
                _abort(each, rst=False)
            if not writers:
                conn.close()  # cancelled before asyncio took the socket over

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(65536):
                await self._flowing.wait()
                if self.mode == "latency":
                    await asyncio.sleep(self._delay[0] + random.uniform(0, self._delay[1]))
                dst.write(chunk)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()
        except OSError:
            _abort(dst, rst=False)  # the other direction's read then ends too


def _abort(writer: asyncio.StreamWriter, *, rst: bool) -> None:
    sock = writer.get_extra_info("socket")
    if rst and sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
