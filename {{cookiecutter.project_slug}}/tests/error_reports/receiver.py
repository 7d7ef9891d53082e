"""A stand-in for Sentry's ingestion: a real HTTP server on a free local port that keeps every envelope it gets.

The SDK posts an envelope (a JSON header line, then items, each a header line and a payload) to
``/api/<project>/envelope/``, gzip-compressed. ``hang=True`` makes the server take the request and never answer,
as a Sentry that is down behind a load balancer would.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PUBLIC_KEY = "publickey"


@dataclass(frozen=True)
class Envelope:
    path: str
    raw: bytes  # as sent, compressed
    body: bytes  # decompressed
    header: dict[str, Any]
    items: list[tuple[dict[str, Any], bytes]]

    def events(self) -> list[dict[str, Any]]:
        loaded: list[dict[str, Any]] = [
            json.loads(payload) for header, payload in self.items if header["type"] == "event"
        ]
        return loaded


def parse(path: str, raw: bytes, encoding: str) -> Envelope:
    if encoding == "gzip":
        body = gzip.decompress(raw)
    elif encoding in ("", "identity"):
        body = raw
    else:
        raise AssertionError(f"the receiver cannot read Content-Encoding {encoding!r}")
    header_line, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        if "length" in item_header:
            payload, rest = rest[: item_header["length"]], rest[item_header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return Envelope(path, raw, body, json.loads(header_line), items)


class Receiver:
    def __init__(self, *, hang: bool = False) -> None:
        self.envelopes: list[Envelope] = []
        self.requests = 0
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests += 1
                if hang:
                    receiver._released.wait(60)
                    return
                receiver.envelopes.append(parse(self.path, raw, self.headers.get("Content-Encoding", "")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="sentry-receiver", daemon=True)
        self._thread.start()

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self.server.server_address[1]}/1"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Envelope]:
        """The envelopes received once there are ``count`` of them; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.envelopes) < count:
            assert time.monotonic() < deadline, f"{len(self.envelopes)} envelopes within {timeout} s, expected {count}"
            time.sleep(0.01)
        return list(self.envelopes)

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
