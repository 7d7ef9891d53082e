"""The typed state the lifespan yields, and the dependency aliases routes use to reach it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from .cache import Cache
from .checks import HealthChecks
from .db import Database
from .metrics import Metrics
from .resilience import Guards
from .settings import Settings
from .shutdown import Lifecycle

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class State:
    settings: Settings
    lifecycle: Lifecycle
    metrics: Metrics
    database: Database
    cache: Cache
    guards: Guards
    health: HealthChecks
    resources: Mapping[type[Any], object] = field(default_factory=dict)  # what the optional parts provide

    def get(self, kind: type[T]) -> T:
        """The ``kind`` an optional part provides (``features.Assembly.provide``)."""
        value = self.resources.get(kind)
        if not isinstance(value, kind):
            raise LookupError(f"no part of this service provides a {kind.__name__}")
        return value


# Dependencies are coroutines: FastAPI runs a plain ``def`` dependency in a worker thread, per request.
async def get_state(request: Request) -> State:
    state: State = request.state.state
    return state


async def get_database(request: Request) -> Database:
    state: State = request.state.state
    return state.database


async def get_cache(request: Request) -> Cache:
    state: State = request.state.state
    return state.cache


StateDep = Annotated[State, Depends(get_state)]
DatabaseDep = Annotated[Database, Depends(get_database)]
CacheDep = Annotated[Cache, Depends(get_cache)]
