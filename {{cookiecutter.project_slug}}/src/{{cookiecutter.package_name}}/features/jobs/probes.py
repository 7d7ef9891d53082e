"""The worker's own small HTTP server, on ``JOBS_PORT``: ``/metrics`` and its liveness, nothing else.

It runs in a thread, so that it answers while the event loop is stuck, and says so: liveness fails once the
loop's ticker is ``JOBS_STALL_SECONDS`` late (a handler blocking the loop, a deadlock), never because PostgreSQL
is down, which the worker rides out by itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from ...metrics import Metrics


class Ticker:
    """The event loop's heartbeat: a timestamp it moves every ``interval`` while it runs."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.last = time.monotonic()

    async def run(self) -> None:
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(self.interval)

    def late(self) -> float:
        return time.monotonic() - self.last


class ProbeServer:
    def __init__(self, port: int, prefix: str, metrics: Metrics, ticker: Ticker, stall_seconds: float) -> None:
        live = f"{prefix}/live"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                if self.path == "/metrics":
                    self._answer(200, metrics.exposition(), CONTENT_TYPE_LATEST)
                elif self.path == live:
                    late = ticker.late()
                    ok = late < stall_seconds
                    body = b'{"status":"pass"}' if ok else b'{"status":"fail","output":"the event loop is stalled"}'
                    self._answer(200 if ok else 503, body, "application/health+json")
                else:
                    self._answer(404, b"", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # probes are not logged
                return

        self.server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 - the kubelet probes the pod IP
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="worker-probes", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
