"""The bounded protocol's refusals, in process: 431 and 408 with the connection closed, never ahead of a response.

Under pipelining (RFC 9112, section 9.3.2) the answers go out in the order of the requests: a refusal of the
next head waits for the responses to the requests before it, and the head timer does not run while one is still
being answered (the time is the app's, not the client's). The same cases against real gunicorn are in
tests/failures/test_hostile_clients.py.
"""

from __future__ import annotations

import asyncio

import pytest
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

from tests.unit.conftest import Connect
from tests.unit.wire import CLOSE, GET, hello, settle

BIG = b"GET / HTTP/1.1\r\nHost: example.org\r\nX-Big: " + b"x" * 5000 + b"\r\n\r\n"
MANY = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(30)) + b"\r\n"
PARTIAL = b"GET /nex"


class Held:
    """Answers each request only once released: a route still at work."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await self.released.wait()
        await hello(scope, receive, send)


@pytest.mark.parametrize("head", [BIG, MANY], ids=["head-over-MAX_HEADER_BYTES", "over-MAX_HEADER_FIELDS"])
async def test_a_head_over_a_limit_is_refused_and_the_connection_closed(connect: Connect, head: bytes) -> None:
    protocol, transport, loop = connect()
    protocol.data_received(head)
    assert transport.statuses() == [431] and transport.eof
    protocol.data_received(b"more of the head, ignored")
    loop.advance(1)
    assert transport.closed


async def test_a_head_split_over_reads_is_counted_as_a_whole(connect: Connect) -> None:
    protocol, transport, _ = connect()
    for part in range(0, len(BIG), 1000):
        protocol.data_received(BIG[part : part + 1000])
    assert transport.statuses() == [431]


@pytest.mark.parametrize("sent", [b"", PARTIAL, b"\r\n"], ids=["nothing", "half-a-request-line", "a-blank-line"])
async def test_a_head_not_received_within_the_head_timeout_gets_408(connect: Connect, sent: bytes) -> None:
    """Timed from the connection's opening: a client that sends nothing, or not enough, is answered 408."""
    protocol, transport, loop = connect()
    if sent:
        protocol.data_received(sent)
    loop.advance(1.9)
    assert transport.buffer == b""
    loop.advance(0.1)
    assert transport.statuses() == [408]
    loop.advance(1)
    assert transport.closed


async def test_the_next_head_is_timed_from_its_first_byte(connect: Connect) -> None:
    protocol, transport, loop = connect()
    protocol.data_received(GET)
    await settle()
    loop.advance(4)  # idle, under keep-alive's 5 s
    protocol.data_received(PARTIAL)
    assert loop.pending() == ["_head_timed_out"]
    loop.advance(2)
    assert transport.statuses() == [200, 408]


async def test_a_head_begun_in_the_read_that_completed_the_request_before_it_is_timed(connect: Connect) -> None:
    """A request and the first bytes of the next in one read, then nothing: 408 after the head timeout, not a
    silent close by the keep-alive timer."""
    protocol, transport, loop = connect()
    protocol.data_received(GET + PARTIAL)
    await settle()
    assert transport.statuses() == [200]
    assert loop.pending() == ["_head_timed_out"]
    loop.advance(2)
    assert transport.statuses() == [200, 408]


async def test_a_head_begun_in_the_read_that_completed_the_request_before_it_is_counted(connect: Connect) -> None:
    protocol, transport, _ = connect()
    protocol.data_received(GET + BIG[:3000])
    await settle()
    protocol.data_received(BIG[3000:4000])
    assert transport.statuses() == [200]
    protocol.data_received(BIG[4000:])
    assert transport.statuses() == [200, 431]


@pytest.mark.parametrize("head", [BIG, MANY], ids=["head-over-MAX_HEADER_BYTES", "over-MAX_HEADER_FIELDS"])
@pytest.mark.parametrize("same_read", [True, False], ids=["in-the-same-read", "in-a-later-read"])
async def test_a_refusal_behind_a_request_in_flight_comes_after_its_response(
    connect: Connect, head: bytes, same_read: bool
) -> None:
    app = Held()
    protocol, transport, loop = connect(app)
    protocol.data_received(GET + head if same_read else GET)
    await settle()
    protocol.data_received(b"" if same_read else head)
    await settle()
    assert transport.buffer == b"" and not transport.eof
    app.released.set()
    await settle()
    assert transport.statuses() == [200, 431] and transport.eof
    loop.advance(1)
    assert transport.closed


async def test_the_head_timer_waits_for_the_response_in_flight(connect: Connect) -> None:
    """The next head's first bytes arrive while the app is still answering; it takes longer than the head
    timeout. Its response goes out, and only then does the next head's time start."""
    app = Held()
    protocol, transport, loop = connect(app)
    protocol.data_received(GET)
    await settle()
    protocol.data_received(PARTIAL)
    loop.advance(10)
    assert transport.buffer == b"" and not transport.closed
    app.released.set()
    await settle()
    assert transport.statuses() == [200]
    assert loop.pending() == ["_head_timed_out"]
    loop.advance(2)
    assert transport.statuses() == [200, 408]


async def test_behind_pipelined_requests_a_refusal_comes_after_every_response(connect: Connect) -> None:
    app = Held()
    protocol, transport, _ = connect(app)
    protocol.data_received(GET + GET + BIG)
    app.released.set()
    await settle()
    assert transport.statuses() == [200, 200, 431]


async def test_a_refusal_behind_a_response_that_closes_the_connection_is_not_sent(connect: Connect) -> None:
    app = Held()
    protocol, transport, loop = connect(app)
    protocol.data_received(CLOSE + BIG)
    app.released.set()
    await settle()
    assert transport.statuses() == [200] and transport.closed
    assert loop.pending() == []


async def test_a_head_completed_in_time_is_served(connect: Connect) -> None:
    protocol, transport, loop = connect()
    protocol.data_received(PARTIAL)
    loop.advance(1.9)
    protocol.data_received(b"t HTTP/1.1\r\nHost: example.org\r\n\r\n")
    await settle()
    assert transport.statuses() == [200]
    assert loop.pending() == ["timeout_keep_alive_handler"]
