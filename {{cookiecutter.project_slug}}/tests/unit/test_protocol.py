"""The bounded protocol behaves as uvicorn's own on every request within its bounds, in process.

Cases ported from uvicorn's protocol suite (tests/protocols/test_http.py of the pinned uvicorn, which passes
against this class): those that go through the methods the class overrides (reading, header fields, the end of
a head, the end of a request, the end of a response). The refusals themselves, and pipelining, are in
test_protocol_refusals.py; every attack against real gunicorn in tests/failures/test_hostile_clients.py.
"""

from __future__ import annotations

import pytest
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

from tests.unit.conftest import Connect
from tests.unit.wire import CLOSE, GET, POST, hello, settle


async def test_a_request_is_answered_and_the_connection_kept_alive(connect: Connect) -> None:
    protocol, transport, loop = connect()
    protocol.data_received(GET)
    await settle()
    assert transport.statuses() == [200] and transport.buffer.endswith(b"Hello, world")
    assert loop.pending() == ["timeout_keep_alive_handler"]
    loop.advance(5)
    assert transport.closed


async def test_header_values_lose_surrounding_whitespace(connect: Connect) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        assert scope["type"] == "http"
        seen.extend(scope["headers"])
        await hello(scope, receive, send)

    protocol, transport, _ = connect(app)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: example.org\r\nX-Test: \t hello \t \r\n\r\n")
    await settle()
    assert transport.statuses() == [200] and (b"x-test", b"hello") in seen


async def echo(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    body, more = b"", True
    while more:
        message = await receive()
        assert message["type"] == "http.request"
        body, more = body + message["body"], message["more_body"]
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("size", [18, 100_000], ids=["small", "larger-than-the-head-limit"])
async def test_a_body_in_the_same_read_as_its_head_is_not_counted_as_head(connect: Connect, size: int) -> None:
    """A body that arrives with its head, even one over the head limit and uvicorn's read-pausing mark, reaches
    the app whole, and the next request on the connection is served."""
    protocol, transport, _ = connect(echo)
    head = b"POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: %d\r\n\r\n" % size
    protocol.data_received(head + b"x" * size)
    await settle()
    assert transport.statuses() == [200] and transport.take().endswith(b"\r\n\r\n" + b"x" * size)
    protocol.data_received(POST)
    await settle()
    assert transport.statuses() == [200] and transport.reading


async def test_a_head_in_one_byte_reads_is_served(connect: Connect) -> None:
    """Fragmented as uvicorn's test_fragmentation sends it: every byte in a read of its own."""
    protocol, transport, _ = connect()
    for byte in GET:
        protocol.data_received(bytes([byte]))
    await settle()
    assert transport.statuses() == [200]


async def test_a_head_just_within_the_limits_is_served(connect: Connect) -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(18))
    head = b"GET / HTTP/1.1\r\nHost: example.org\r\n" + fields + b"Cookie: "
    padding = 4096 - len(head) - len(b"\r\n\r\n") - 64  # the head as parsed is a little smaller than as sent
    protocol, transport, _ = connect()
    protocol.data_received(head + b"x" * padding + b"\r\n")
    protocol.data_received(b"\r\n")
    await settle()
    assert transport.statuses() == [200]


async def test_pipelined_requests_are_answered_in_order_and_then_kept_alive(connect: Connect) -> None:
    paths: list[str] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        assert scope["type"] == "http"
        paths.append(scope["path"])
        await hello(scope, receive, send)

    protocol, transport, loop = connect(app)
    protocol.data_received(b"".join(GET.replace(b"/", b"/%d" % i, 1) for i in range(3)))
    assert loop.pending() == []  # nor keep-alive while requests wait
    await settle()
    assert transport.statuses() == [200, 200, 200] and paths == ["/0", "/1", "/2"]
    assert loop.pending() == ["timeout_keep_alive_handler"]


async def test_an_invalid_request_gets_400_and_a_closed_connection(connect: Connect) -> None:
    protocol, transport, loop = connect()
    protocol.data_received(b"x" * 100)
    assert transport.statuses() == [400] and transport.closed
    protocol.connection_lost(None)
    assert loop.pending() == []


async def test_an_early_answer_leaves_the_connection_usable(connect: Connect) -> None:
    """The app answers before the body has arrived; the rest of the body, then the next request."""
    protocol, transport, _ = connect()
    head, body = POST.split(b"\r\n\r\n")
    protocol.data_received(head + b"\r\n\r\n")
    await settle()
    assert transport.statuses() == [200]
    transport.take()
    protocol.data_received(body)
    protocol.data_received(GET)
    await settle()
    assert transport.statuses() == [200] and not transport.closed


@pytest.mark.parametrize(
    "request_",
    [CLOSE, GET.replace(b"HTTP/1.1", b"HTTP/1.0"), CLOSE + GET],
    ids=["connection-close", "http-1.0", "a-request-after-close"],
)
async def test_a_request_that_ends_the_connection_is_answered_once_then_closed(
    connect: Connect, request_: bytes
) -> None:
    protocol, transport, _ = connect()
    protocol.data_received(request_)
    await settle()
    assert transport.statuses() == [200] and transport.closed


async def test_100_continue_is_sent_when_the_app_reads_the_body(connect: Connect) -> None:
    protocol, transport, _ = connect(echo)
    protocol.data_received(POST.replace(b"Host: example.org\r\n", b"Host: example.org\r\nExpect: 100-continue\r\n"))
    await settle()
    assert transport.statuses() == [100, 200] and transport.buffer.endswith(b'{"hello": "world"}')


async def test_past_limit_concurrency_a_request_gets_503(connect: Connect) -> None:
    protocol, transport, _ = connect(limit_concurrency=1)
    protocol.data_received(GET)
    await settle()
    assert transport.statuses() == [503]


async def test_shutdown_closes_an_idle_connection_and_lets_a_request_finish(connect: Connect) -> None:
    idle, idle_transport, _ = connect()
    idle.shutdown()
    busy, busy_transport, _ = connect()
    busy.data_received(GET)
    busy.shutdown()
    await settle()
    assert idle_transport.closed and busy_transport.statuses() == [200] and busy_transport.closed


async def test_an_upgrade_without_websocket_support_is_served_as_a_request(connect: Connect) -> None:
    protocol, transport, _ = connect(ws="none")
    upgrade = b"Connection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 11\r\n\r\n"
    protocol.data_received(GET.removesuffix(b"\r\n") + upgrade)
    await settle()
    assert transport.statuses() == [200]
