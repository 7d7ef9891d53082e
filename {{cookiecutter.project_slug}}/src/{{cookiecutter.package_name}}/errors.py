"""RFC 9457 problem+json for every error, and 503/504 for the infrastructure's failures.

A 500 never shows an exception's text; a refused call (open breaker, full bulkhead, exhausted pool)
answers 503 with ``Retry-After`` so that clients and load balancers back off instead of piling on.
Each exception answered 500 is logged and handed to the error hooks the lifespan collected (``unhandled``), so
that an optional part can report it; a 4xx, or a 503/504 the service answers on purpose, never reaches them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from .resilience import BreakerOpen, BulkheadFull, DeadlineExceeded, driver_errors, is_failure
from .schema import missing_object

if TYPE_CHECKING:
    from .state import State

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Called with each exception the service answers 500 for and the request's ASGI scope.
ErrorHook = Callable[[BaseException, Scope], None]


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


async def _infrastructure(request: Request, exc: Exception) -> Response:
    if isinstance(exc, sa_exc.TimeoutError):
        request.state.state.metrics.pool_timeouts.inc()
        log.warning("database pool exhausted", extra={"path": request.url.path})
        return problem(503, "The database is busy.", instance=request.url.path, headers=_retry_after(1))
    if is_failure(exc):
        log.warning("dependency failure", extra={"path": request.url.path, "error": type(exc).__name__})
        return problem(503, "A dependency is unavailable.", instance=request.url.path, headers=_retry_after(1))
    if missing_object(exc) and await _migrations_pending(request):
        return problem(503, "Database migrations pending.", instance=request.url.path, headers=_retry_after(5))
    unhandled(exc, request.scope)
    return problem(500, instance=request.url.path)


async def _migrations_pending(request: Request) -> bool:
    """Whether a missing table is the database lagging behind the code (503), or the code's own bug (500)."""
    try:
        return await request.state.state.schema.pending() is not None
    except Exception:  # the database went away meanwhile: the missing table is still most likely the schema's
        return True


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BreakerOpen, _refused)
    app.add_exception_handler(BulkheadFull, _refused)
    app.add_exception_handler(DeadlineExceeded, _deadline)
    for error in (sa_exc.DBAPIError, sa_exc.TimeoutError, *driver_errors()):
        app.add_exception_handler(error, _infrastructure)


def unhandled(exc: BaseException, scope: Scope) -> None:
    """Log an exception the service answers 500 for, then tell each error hook of it."""
    log.error("unhandled error", exc_info=exc, extra={"path": scope["path"]})
    state: State | None = scope.get("state", {}).get("state")
    for hook in state.error_hooks if state is not None else ():
        try:
            hook(exc, scope)
        except Exception as failure:  # a hook that fails must not change the answer
            log.warning("an error hook failed", extra={"error": repr(failure)})


async def crash_response(scope: Scope, receive: Receive, send: Send) -> None:
    """The 500 sent for an exception that escaped every handler."""
    await problem(500, instance=scope["path"])(scope, receive, send)


async def timeout_response(scope: Scope, receive: Receive, send: Send) -> None:
    """The 504 sent when the request's deadline cut it short."""
    await problem(504, "The request's deadline passed.", instance=scope["path"])(scope, receive, send)
