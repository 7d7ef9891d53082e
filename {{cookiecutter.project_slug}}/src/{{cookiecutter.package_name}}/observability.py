"""JSON logs with a per-request correlation id, and the Prometheus metrics of the service.

The request id lives in a ContextVar set by pure ASGI middleware (``BaseHTTPMiddleware`` would run the
endpoint in another task and lose it), so every log line of a request carries it without passing it around.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import sys
import time
import traceback
from contextvars import ContextVar
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import Metrics

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Attributes every LogRecord has, plus uvicorn's terminal-only copy of its message.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}

access_log = logging.getLogger("{{ cookiecutter.package_name }}.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, then any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return orjson.dumps(entry, default=str).decode()


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that sends every logger, gunicorn's and uvicorn's too, to JSON on stdout."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    quiet = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": handler},
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "gunicorn.error": quiet,
            "gunicorn.access": {"handlers": [], "propagate": False},
            "uvicorn": quiet,
            "uvicorn.error": quiet,
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure_logging(level: str) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level))
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def new_request_id(header: bytes | None) -> str:
    """The caller's id when it is well-formed (letters, digits, ``._:-``, up to 128), else a fresh one.

    Not a uuid4: a correlation id needs uniqueness, not unpredictability, and os.urandom costs a syscall.
    """
    if header:
        candidate = header.decode("latin-1")
        if _VALID_REQUEST_ID.fullmatch(candidate):
            return candidate
    return f"{random.getrandbits(128):032x}"


class AccessLog:
    """One JSON line per request, in the format of the other log lines, written to stdout in batches.

    The line skips the logging module (record, caller lookup, formatter: about 13 us), and lines are written
    together, as nginx's ``access_log ... buffer= flush=`` does: a write system call per request costs more
    than the rest of the middleware stack under load (see ``make bench`` at the template root). Pending lines
    are written once they reach ``buffer_bytes``, and at least every ``interval`` seconds by ``flush_forever``;
    so an access line may follow log lines written up to that much later (each line carries its own time), and
    a process killed outright loses that much at most.
    """

    def __init__(self, *, buffer_bytes: int = 8192, interval: float = 0.2) -> None:
        self.buffer_bytes = buffer_bytes
        self.interval = interval
        self._pending: list[bytes] = []
        self._size = 0
        self._second = -1
        self._stamp = ""

    @property
    def enabled(self) -> bool:
        return access_log.isEnabledFor(logging.INFO)

    def write(self, scope: Scope, route: str | None, status: int, elapsed: float, request_id: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:  # one strftime per second, not per request
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        entry = {
            "time": f"{self._stamp}.{int(now * 1000) % 1000:03d}Z",
            "level": "INFO",
            "logger": access_log.name,
            "message": "request",
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        }
        line = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
        self._pending.append(line)
        self._size += len(line)
        if self._size >= self.buffer_bytes:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            lines, self._pending, self._size = self._pending, [], 0
            sys.stdout.write(b"".join(lines).decode())

    async def flush_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.flush()
        finally:
            self.flush()


class RequestContextMiddleware:
    """Per request, in one pass: the correlation id in and out, the HTTP metrics, one access log line, and a
    problem+json 500 for an exception that escaped every handler.

    The metrics carry prometheus-fastapi-instrumentator's names and labels (``http_requests_total``,
    ``http_request_duration_seconds``; ``http_requests_inprogress`` is sampled, ``Deadlines.sample_in_flight``) but
    are recorded here: its middleware matches every route twice per request to find the template and builds a
    Response object for its metric callbacks, which cost more than the rest of the stack together (see ``make
    bench`` at the template root), while the router has already written the template into ``scope["route"]``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        access: AccessLog,
        unmetered: frozenset[str],
        crash_response: ASGIApp,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access = access
        self.unmetered = unmetered
        self.crash_response = crash_response
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(_header(scope, b"x-request-id"))
        token = request_id_var.set(request_id)
        id_header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            access_log.exception("unhandled error", extra={"path": scope["path"]})
            if response_started:
                raise
            await self.crash_response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            if scope["path"] not in self.unmetered:
                self._record(route or "none", scope["method"], status, elapsed)
                if self.access.enabled:
                    self.access.write(scope, route, status, elapsed, request_id)
            request_id_var.reset(token)

    def _record(self, handler: str, method: str, status: int, elapsed: float) -> None:
        key = (handler, method, status)
        children = self._children.get(key)
        if children is None:
            metrics = self.metrics
            children = (
                metrics.http_requests.labels(handler, method, str(status)),
                metrics.http_latency.labels(handler, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
