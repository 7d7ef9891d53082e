"""A TCP proxy in front of PostgreSQL that counts the statements its clients execute, by text.

Counting bytes such as ``SELECT 1`` in the traffic misses most executions: asyncpg and SQLAlchemy cache
prepared statements per connection, so the text crosses the wire once and later runs are a Bind and an
Execute naming the statement. This proxy follows the protocol per connection instead: Parse names a
statement, Bind puts it in a portal, Execute runs the portal; a simple Query runs its text directly.

    with StatementCounter.for_url(url).run_in_thread() as counter:
        ...  # point the service at counter.url_for(url)
        counter.counts  # Counter({"SELECT 1": 3, "BEGIN": 6, ...})
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from collections import Counter
from collections.abc import Iterator

from tests.faults import address_of, on_a_thread, proxied

_UNTYPED = {80877103, 80877104, 80877102}  # SSLRequest, GSSENCRequest, CancelRequest: sent before the startup


def _text(raw: bytes) -> str:
    return re.sub(r"\s+", " ", raw.decode(errors="replace")).strip().rstrip(";").strip() or ";"


class StatementCounter:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.counts: Counter[str] = Counter()
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @classmethod
    def for_url(cls, url: str) -> StatementCounter:
        return cls(*address_of(url))

    def url_for(self, url: str) -> str:
        return proxied(url, self.port)

    async def _client_to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        statements: dict[bytes, str] = {}
        portals: dict[bytes, str] = {}
        while True:  # untyped messages until the startup message
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            writer.write(head + await reader.readexactly(length - 8))
            await writer.drain()
            if code not in _UNTYPED:
                break
            if code == 80877102:
                return
        while True:
            head = await reader.readexactly(5)
            kind, length = head[:1], struct.unpack("!i", head[1:])[0]
            body = await reader.readexactly(length - 4)
            writer.write(head + body)
            if kind == b"P":
                name, query = body.split(b"\0", 2)[:2]
                statements[name] = _text(query)
            elif kind == b"B":
                portal, statement = body.split(b"\0", 2)[:2]
                portals[portal] = statements.get(statement, "?")
            elif kind == b"E":
                self.counts[portals.get(body.split(b"\0", 1)[0], "?")] += 1
            elif kind == b"Q":
                self.counts[_text(body.rstrip(b"\0"))] += 1
            elif kind == b"X":
                await writer.drain()
                return
            await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._relay(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.add(up_writer)

        async def server_to_client() -> None:
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
                await writer.drain()

        back = asyncio.create_task(server_to_client())
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await self._client_to_server(reader, up_writer)
        up_writer.close()  # the server then closes its side, which ends the other direction
        with contextlib.suppress(OSError):
            await back
        writer.close()
        self._writers -= {writer, up_writer}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, drop every relayed connection, and wait until each handler has finished."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    @contextlib.contextmanager
    def run_in_thread(self) -> Iterator[StatementCounter]:
        with on_a_thread(self.start, self.stop, "statement-counter"):
            yield self
