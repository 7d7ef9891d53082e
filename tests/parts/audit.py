"""An audit trail of the requests that failed: a part written as one module, using every hook a part has.

Its settings group (``AUDIT_``), its table (``audit_entries``), its router (``/audit``), its command
(``python -m <package> audit-tables``), its lifespan (it provides an ``AuditTrail`` to the routes), a request
watcher that notes each request's route and status, and an error hook that notes each 500.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import APIRouter
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from starlette.types import Scope

from ..db import Base
from ..settings import Group, PositiveInt, Settings, group_config
from ..state import StateDep
from . import Assembly, Command, Feature


class AuditSettings(Group):
    model_config = group_config("AUDIT_")
    max_entries: PositiveInt = 100


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    route: Mapped[str] = mapped_column(String(200))


@dataclass
class AuditTrail:
    max_entries: int
    requests: list[tuple[str | None, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    closed: bool = False

    def watch(self, scope: Scope) -> Watch:
        return Watch(self)

    def report(self, exc: BaseException, scope: Scope) -> None:
        self.errors.append(f"{type(exc).__name__} at {scope['path']}")


class Watch:
    log_fields: Mapping[str, str] | None = {"audited": "yes"}

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def end(self, route: str | None, status: int) -> None:
        self.trail.requests = [*self.trail.requests, (route, status)][-self.trail.max_entries :]


router = APIRouter(prefix="/audit")


@router.get("")
async def read_trail(state: StateDep) -> dict[str, object]:
    trail = state.get(AuditTrail)
    return {"requests": trail.requests, "errors": trail.errors}


@asynccontextmanager
async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
    trail = AuditTrail(assembly.settings.feature(AuditSettings).max_entries)
    assembly.provide(AuditTrail, trail)
    assembly.hooks.watchers.append(trail.watch)
    assembly.hooks.error_hooks.append(trail.report)
    try:
        yield
    finally:
        trail.closed = True


def tables(settings: Settings, args: argparse.Namespace) -> int:
    print(" ".join(sorted(Base.metadata.tables)))
    return 0


feature = Feature(
    "audit",
    settings={"audit": AuditSettings},
    routers=[router],
    models=[sys.modules[__name__]],
    commands=[Command("audit-tables", "print the tables the models declare", tables)],
    lifespan=lifespan,
)
