"""JSON logs with a per-request correlation id, and the Prometheus metrics of the service.

The request id lives in a ContextVar set by pure ASGI middleware (``BaseHTTPMiddleware`` would run the
endpoint in another task and lose it), so every log line of a request carries it without passing it around.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
import uuid
from contextvars import ContextVar
from typing import Any

import orjson
from prometheus_client import Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    """The caller's id when it is well-formed (letters, digits, ``._:-``, up to 128), else a fresh one."""
    if header:
        candidate = header.decode("latin-1")
        if _VALID_REQUEST_ID.fullmatch(candidate):
            return candidate
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Correlation id in and out, one access log line per request, and a problem+json 500 for crashes.

    Paths in ``quiet_paths`` (the probes, ``/metrics``) log at debug level only.
    """

    def __init__(
        self, app: ASGIApp, *, quiet_paths: frozenset[str], in_progress: Gauge, crash_response: ASGIApp
    ) -> None:
        self.app = app
        self.quiet_paths = quiet_paths
        self.in_progress = in_progress
        self.crash_response = crash_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(_header(scope, b"x-request-id"))
        token = request_id_var.set(request_id)
        encoded_id = request_id.encode()
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", encoded_id)]
            await send(message)

        self.in_progress.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            access_log.exception("unhandled error", extra={"path": scope["path"]})
            if response_started:
                raise
            await self.crash_response(scope, receive, send_with_id)
        finally:
            self.in_progress.dec()
            path = scope["path"]
            level = logging.DEBUG if path in self.quiet_paths else logging.INFO
            if access_log.isEnabledFor(level):
                route = scope.get("route")
                access_log.log(
                    level,
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "route": getattr(route, "path", None),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
