"""The service's optional parts, one module each, found and wired at startup.

Each module in this package defines ``feature``, a ``Feature``: the settings groups it reads, the routers it
serves and what it opens in the lifespan. A part is whole files (its module here, its package, its tests),
so adding or removing one needs no edit anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ..cache import RemoteCache
    from ..errors import ErrorHook
    from ..health import Check
    from ..metrics import Metrics
    from ..observability import RequestWatcher
    from ..resilience import Dependency
    from ..settings import Group, Settings


@dataclass
class Assembly:
    """What the lifespan is putting together; each part's ``open`` adds to it."""

    settings: Settings
    metrics: Metrics
    stack: AsyncExitStack
    engine: AsyncEngine
    watchers: list[RequestWatcher]  # the request middleware's: a part appends one to watch every request
    guards: list[Dependency]
    checks: list[Check]
    error_hooks: list[ErrorHook]
    remote_cache: RemoteCache | None = None


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    settings: Mapping[str, type[Group]] = field(default_factory=dict)
    routers: Sequence[APIRouter] = ()
    open: Callable[[Assembly], Awaitable[None]] | None = None


@cache
def installed() -> tuple[Feature, ...]:
    """Every part in this package, in the order of their module names."""
    features = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda found: found.name):
        feature = getattr(importlib.import_module(f"{__name__}.{module.name}"), "feature", None)
        if not isinstance(feature, Feature):
            raise TypeError(f"{__name__}.{module.name} defines no `feature = Feature(...)`")
        features.append(feature)
    return tuple(features)
