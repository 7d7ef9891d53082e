"""uvicorn's HTTP/1.1 connection, with bounds on what a client may send before its request reaches the app.

uvicorn's httptools protocol bounds neither the size of a request head nor the time a client may take to send
it: its keep-alive timer runs only between requests, and the parser buffers a header value until it ends. So a
client could hold a connection for ever with half a request line, or make the worker buffer a header of any
size; gunicorn's ``limit_request_line``/``limit_request_fields`` apply to its own workers, not to uvicorn's, and
h11's ``h11_max_incomplete_event_size`` to the slower h11 parser only. So the bounds are enforced here, where the
bytes arrive, before anything is buffered: this subclass counts the head's bytes as they come (the worker holds
at most ``max_head_bytes`` plus one read of a head), counts its header fields, and times it from the read that
brought its first byte (from the connection's opening on a new connection; a head that comes whole in one read,
the usual case, costs no timer). Over a limit it answers 431, too slow 408, and closes the connection. uvicorn's
own ``limit_concurrency`` bounds the connections a worker holds, answering 503 past it. The body is bounded by
the ASGI layer (``middleware.BodyLimits``), which can answer problem+json.

A pipelining client may send the next head while a response is still being written; responses go out in the
order of the requests (RFC 9112, section 9.3.2). So the head timer runs only while no response is in progress
(a head begun meanwhile is timed from the end of the last one: the wait was the app's, not the client's), and
a head refused meanwhile is answered once the responses before it have gone out, or not at all if one of them
closes the connection.

Only the head is handled here; the request's lifecycle is uvicorn's. ``data_received`` repeats uvicorn's own so
that a refused head stops the parser without the 400 uvicorn sends for a parser error.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import ServerSettings

_LINGER_SECONDS = 1.0
_RESPONSES = {
    408: b"HTTP/1.1 408 Request Timeout\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a head that was refused."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes: ClassVar[int] = 32 * 1024
    max_header_fields: ClassVar[int] = 100
    head_timeout: ClassVar[float] = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._refused = False  # a head was refused: nothing more is read
        self._refusal: bytes | None = None  # a refusal waiting for the responses before it
        self._head_bytes = 0
        self._in_head = True  # the next bytes are (part of) a request head
        self._head_begun = False  # bytes of the next head arrived after the request before it
        self._uncounted = False  # ... in the read that completed that request: data_received did not count them
        self._head_timer: asyncio.TimerHandle | None = None
        self._start_head_timer()  # a new connection's first head is timed from its opening

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
            self._head_begun = True
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refused:
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if self._in_head and self._head_begun:  # a head is still incomplete: count it, time it
            if self._uncounted:  # what the parser has passed on counts too (each is at most what was received)
                self._head_bytes = max(self._head_bytes, self._head_size())
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, "request head over MAX_HEADER_BYTES")
            else:
                self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._head_begun:
            self._head_begun = self._uncounted = True  # the previous request ended in this same read

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.max_header_fields:
            self._refuse(431, "more header fields than MAX_HEADER_FIELDS")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        # The bytes counted as they came may include the start of the body: measure the head only when they pass.
        if (self._head_bytes > self.max_head_bytes or self._uncounted) and self._head_size() > self.max_head_bytes:
            self._refuse(431, "request head over MAX_HEADER_BYTES")
            raise _Refused
        self._head_bytes = 0
        self._head_begun = self._uncounted = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # its timer starts with the next request's first byte; until then keep-alive's runs

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if (self._refusal is None and not self._head_begun) or self.transport.is_closing() or not self._answered():
            return
        # The last response has gone out, and the next head had begun (or was refused) meanwhile: its turn now.
        self._unset_keepalive_if_required()
        if self._refusal is not None:
            self._send_refusal(self._refusal)
        else:
            self._start_head_timer()

    def _answered(self) -> bool:
        """Every request received so far has had its response (the latest cycle is the last to be answered)."""
        return self.cycle is None or self.cycle.response_complete

    def _start_head_timer(self) -> None:
        """Time the head from now, unless it is timed already or the app is still answering a request."""
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):  # _answered, inlined
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, "request head not received within HEAD_TIMEOUT_SECONDS")

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, reason: str) -> None:
        self._refused = True
        self._stop_head_timer()
        self.logger.warning("refused a request: %s", reason, extra={"status": status, "client": self.client})
        if self.transport.is_closing():
            return
        body = reason.encode()
        refusal = (
            _RESPONSES[status]
            + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            + b"content-length: %d\r\n\r\n" % len(body)
            + body
        )
        if self._answered():
            self._send_refusal(refusal)
        else:
            self._refusal = refusal  # sent by on_response_complete after the last response, unless that one closes

    def _send_refusal(self, refusal: bytes) -> None:
        self._refusal = None
        self.transport.write(refusal)
        # A lingering close: closing with the client's bytes still unread would reset the connection, and the
        # client would lose the answer. Half-close, drop what still comes (data_received ignores it) for a
        # moment, then close.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)


def bounded_protocol(settings: ServerSettings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with ``settings``' limits, for uvicorn's ``http`` option."""
    limits: dict[str, Any] = {
        "max_head_bytes": settings.max_header_bytes,
        "max_header_fields": settings.max_header_fields,
        "head_timeout": settings.head_timeout_seconds,
    }
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), limits)
