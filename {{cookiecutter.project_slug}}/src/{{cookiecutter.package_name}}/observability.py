"""JSON logs with a per-request correlation id, the access log, and the seams through which an optional part
watches each request and hears of each 500 (``RequestHooks``).

The request id lives in a ContextVar set by the request middleware (``middleware.py``), so every log line of a
request carries it without passing it around.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol

import orjson
from starlette.types import Scope

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Attributes every LogRecord has, plus uvicorn's terminal-only copy of its message.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}

_ACCESS_LOGGER = "{{ cookiecutter.package_name }}.access"
access_log = logging.getLogger(_ACCESS_LOGGER)
log = logging.getLogger(__name__)


class RequestWatch(Protocol):
    """What an optional part keeps for one request from its start to its end."""

    # Fields the request's access line carries besides the request id (None: none).
    log_fields: Mapping[str, str] | None

    def end(self, route: str | None, status: int) -> None:
        """The request is answered (``route`` is the template the router matched) and its access line written."""


# Called by the request middleware as each request starts (not probes, nothing on the management port), in the
# request's task and context: what it sets in a ContextVar, the app's code and log lines see. None: nothing to
# watch in this one.
RequestWatcher = Callable[[Scope], RequestWatch | None]
# Called with each exception the service answers 500 for and the request's ASGI scope.
ErrorHook = Callable[[BaseException, Scope], None]


class RequestHooks:
    """What the optional parts add to every request: watchers, and error hooks told of each 500.

    Made with the app and handed to the request middleware; the parts fill it as the lifespan opens them.
    """

    def __init__(self) -> None:
        self.watchers: list[RequestWatcher] = []
        self.error_hooks: list[ErrorHook] = []

    def unhandled(self, exc: BaseException, scope: Scope) -> None:
        """Log an exception the service answers 500 for, with its traceback, then tell each error hook of it."""
        log.error("unhandled error", exc_info=exc, extra={"path": scope["path"]})
        for hook in self.error_hooks:
            try:
                hook(exc, scope)
            except Exception as failure:  # a hook that fails must not change the answer
                log.warning("an error hook failed", extra={"error": repr(failure)})


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

    A fresh id is 32 hex digits, as a uuid4's: 64 random bits drawn once per process, then a counter. A
    correlation id needs uniqueness, not unpredictability; a uuid4 or 128 random bits per request cost 1-2 us.
    """
    if header:
        candidate = header.decode("latin-1")
        if _VALID_REQUEST_ID.fullmatch(candidate):
            return candidate
    return f"{_id_prefix}{next(_id_counter):016x}"


def _new_id_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = f"{random.getrandbits(64):016x}", itertools.count()


_id_prefix: str
_id_counter: itertools.count[int]
_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)  # gunicorn's workers are forks: each draws its own


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
        self._millisecond = -1
        self._time = ""

    @property
    def enabled(self) -> bool:
        return access_log.isEnabledFor(logging.INFO)

    def write(
        self,
        scope: Scope,
        route: str | None,
        status: int,
        elapsed: float,
        request_id: str,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        millisecond = int(time.time() * 1000)
        if millisecond != self._millisecond:  # formatted once per millisecond, the date once per second
            second = millisecond // 1000
            if second != self._second:
                self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._millisecond, self._time = millisecond, f"{self._stamp}.{millisecond % 1000:03d}Z"
        entry = {
            "time": self._time,
            "level": "INFO",
            "logger": _ACCESS_LOGGER,
            "message": "request",
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "route": route,
            "status": status,
            "duration_ms": int(elapsed * 100_000 + 0.5) / 100,  # round(x, 2) costs three times as much
        }
        if fields:
            entry.update(fields)
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
