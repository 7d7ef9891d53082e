"""Operator controls: read every dependency's breaker; force one open, disable it (forced closed), or reset it.

Served only when ``ADMIN_TOKEN`` is set, and only with ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Header, HTTPException, status
from pydantic import BaseModel

from .auth import bearer_matches
from .errors import PROBLEM_RESPONSES
from .state import StateDep

log = logging.getLogger(__name__)


class BreakerCommand(BaseModel):
    action: Literal["force_open", "disable", "reset"]


def build_router(token: str) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], responses=PROBLEM_RESPONSES)

    def authorise(authorization: str | None) -> None:
        if not bearer_matches(authorization, token.encode()):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "A valid bearer token is required.")

    @router.get("/breakers", responses={401: {"description": "Missing or wrong token"}})
    async def read_breakers(state: StateDep, authorization: str | None = Header(None)) -> dict[str, object]:
        authorise(authorization)
        return {guard.name: guard.breaker.snapshot() for guard in state.guards}

    @router.post("/breakers/{name}", responses={401: {"description": "Missing or wrong token"}})
    async def command_breaker(
        name: str, command: BreakerCommand, state: StateDep, authorization: str | None = Header(None)
    ) -> dict[str, object]:
        authorise(authorization)
        guard = state.guards.get(name)
        if guard is None:
            known = sorted(guard.name for guard in state.guards)
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No breaker named {name!r}; known: {known}.")
        breaker = guard.breaker
        getattr(breaker, command.action)()
        log.warning("breaker changed by an operator", extra={"breaker": name, "action": command.action})
        return breaker.snapshot()

    return router
