"""The typed state the lifespan yields, and the dependency aliases routes use to reach it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from . import db
from .cache import Cache
from .errors import ErrorHook
from .health import HealthChecks
from .metrics import Metrics
from .resilience import Dependency
from .schema import SchemaGuard
from .settings import Settings
from .shutdown import Lifecycle


@dataclass(frozen=True, slots=True)
class Guards:
    """Every dependency's guard: the database's by name, those of the optional parts after it."""

    db: Dependency
    others: tuple[Dependency, ...] = ()

    def __iter__(self) -> Iterator[Dependency]:
        yield self.db
        yield from self.others


@dataclass(frozen=True, slots=True)
class State:
    settings: Settings
    lifecycle: Lifecycle
    metrics: Metrics
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    guards: Guards
    health: HealthChecks
    schema: SchemaGuard
    error_hooks: tuple[ErrorHook, ...] = ()  # told of each 500 (errors.unhandled)


# Dependencies are coroutines: FastAPI runs a plain ``def`` dependency in a worker thread, per request.
async def get_state(request: Request) -> State:
    state: State = request.state.state
    return state


StateDep = Annotated[State, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with db.session_scope(state.sessions) as session:
        yield session


async def get_cache(state: StateDep) -> Cache:
    return state.cache


SessionDep = Annotated[AsyncSession, Depends(get_session)]
CacheDep = Annotated[Cache, Depends(get_cache)]
