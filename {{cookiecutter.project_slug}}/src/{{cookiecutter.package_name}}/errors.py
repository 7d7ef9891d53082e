"""RFC 9457 problem+json for every error, and 503/504 for a guard's own failures only.

A guard's refusal (open breaker, full bulkhead) or its dependency's failure (``DependencyUnavailable``, raised by
the guard from its own driver's error: connection lost, timed out, pool exhausted, migrations pending) answers 503
with ``Retry-After`` so that clients and load balancers back off instead of piling on; a passed deadline 504.
Anything else a route raises, an ``OSError`` or a ``TimeoutError`` of its own code included, is a bug: the request
middleware answers it 500, never with the exception's text, logs its traceback and hands it to the error hooks
(``observability.RequestHooks``), so that an optional part can report it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from .resilience import BreakerOpen, BulkheadFull, DeadlineExceeded, DependencyUnavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: problem_response("The request is malformed"),
    503: problem_response("A dependency is unavailable; retry after Retry-After seconds"),
    504: problem_response("The request's deadline passed"),
}


def problem(
    status: int,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path: Starlette's 405 names only the first route that matched."""
    allowed = [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this type only
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem(exc.status_code, detail, instance=request.url.path, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in exc.errors()]
    return problem(422, "The request does not match the schema.", instance=request.url.path, errors=errors)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BreakerOpen | BulkheadFull)  # noqa: S101
    return problem(503, str(exc), instance=request.url.path, headers=_retry_after(exc.retry_after))


async def _deadline(request: Request, exc: Exception) -> Response:
    return problem(504, "The request's deadline passed.", instance=request.url.path)


async def _unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DependencyUnavailable)  # noqa: S101
    log.warning("dependency unavailable", extra={"dependency": exc.name, "error": type(exc.__cause__).__name__})
    return problem(503, exc.detail, instance=request.url.path, headers=_retry_after(exc.retry_after))


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BreakerOpen, _refused)
    app.add_exception_handler(BulkheadFull, _refused)
    app.add_exception_handler(DeadlineExceeded, _deadline)
    app.add_exception_handler(DependencyUnavailable, _unavailable)


async def crash_response(scope: Scope, receive: Receive, send: Send) -> None:
    """The 500 sent for an exception that escaped every handler."""
    await problem(500, instance=scope["path"])(scope, receive, send)


async def timeout_response(scope: Scope, receive: Receive, send: Send) -> None:
    """The 504 sent when the request's deadline cut it short."""
    await problem(504, "The request's deadline passed.", instance=scope["path"])(scope, receive, send)
