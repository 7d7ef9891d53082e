"""How a part plugs into the service, and the optional parts themselves: one module (or package) each.

Each module in this package defines ``feature = Feature(...)``, which declares all the part adds: its settings
groups, its routers, its models (the tables alembic sees), its commands (``python -m <package> <name>``) and its
lifespan, an async context manager that receives the ``Assembly`` (what the core built: the settings, metrics,
lifecycle, database, health checks, guards and request hooks) and provides typed resources back, which routes
read as ``state.get(Kind)``. What the lifespan opens, its exit closes, in reverse order of opening. The core's
own database is a ``Feature`` too (``database.py``), opened first. A part is whole files, so adding or removing
one needs no edit anywhere else.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any, TypeVar

from fastapi import APIRouter

from ..checks import HealthChecks
from ..metrics import Metrics
from ..observability import RequestHooks
from ..resilience import Guards
from ..settings import Group, Settings
from ..shutdown import Lifecycle

T = TypeVar("T")


class Assembly:
    """What the lifespan puts together: the core's components, and the resources each part provides."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        lifecycle: Lifecycle,
        checks: HealthChecks,
        guards: Guards,
        hooks: RequestHooks,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.checks = checks  # a part adds its health checks
        self.guards = guards  # and the guards of its dependencies
        self.hooks = hooks  # and its request watchers and error hooks
        self.resources: dict[type[Any], object] = {}

    def provide(self, kind: type[T], value: T) -> None:
        """Offer ``value`` to routes (``state.get(kind)``) and to the parts opened after this one."""
        if kind in self.resources:
            raise ValueError(f"a {kind.__name__} is provided already")
        self.resources[kind] = value

    def find(self, kind: type[T]) -> T | None:
        """The ``kind`` a part provided, or None when no part did (its option is off, or it opened nothing)."""
        value = self.resources.get(kind)
        return value if value is None or isinstance(value, kind) else None

    def get(self, kind: type[T]) -> T:
        value = self.find(kind)
        if value is None:
            raise LookupError(f"no part provides a {kind.__name__}")
        return value


Lifespan = Callable[[Assembly], AbstractAsyncContextManager[None]]


@dataclass(frozen=True, slots=True)
class Command:
    """``python -m <package> <name>``: ``run`` gets the settings and the parsed arguments and returns the exit code."""

    name: str
    help: str
    run: Callable[[Settings, argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    settings: Mapping[str, type[Group]] = field(default_factory=dict)
    routers: Sequence[APIRouter] = ()
    models: Sequence[ModuleType] = ()  # the modules that declare its tables
    commands: Sequence[Command] = ()
    lifespan: Lifespan | None = None
    after: Sequence[str] = ()  # parts whose lifespan opens before this one's, where the service has them


@cache
def installed() -> tuple[Feature, ...]:
    """Every part in this package: by module name, each after the parts it names in ``after``."""
    found: dict[str, Feature] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        feature = getattr(importlib.import_module(f"{__name__}.{module.name}"), "feature", None)
        if not isinstance(feature, Feature):
            raise TypeError(f"{__name__}.{module.name} defines no `feature = Feature(...)`")
        found[feature.name] = feature
    ordered: list[Feature] = []

    def place(feature: Feature, seen: tuple[str, ...] = ()) -> None:
        if feature in ordered:
            return
        if feature.name in seen:
            raise TypeError(f"parts open after each other in a circle: {' -> '.join((*seen, feature.name))}")
        for name in feature.after:
            if name in found:
                place(found[name], (*seen, feature.name))
        ordered.append(feature)

    for feature in found.values():
        place(feature)
    return tuple(ordered)


def models() -> list[ModuleType]:
    """The modules that declare the parts' tables, imported: what alembic compares with the database."""
    return [module for feature in installed() for module in feature.models]


def settings_groups() -> dict[str, type[Group]]:
    """The settings groups of every part."""
    return {key: group for feature in installed() for key, group in feature.settings.items()}


def variables() -> set[str]:
    """Every environment variable the service reads."""
    return Settings.variables(settings_groups())


def load_settings() -> Settings:
    """The service's settings from the environment: the core's groups and every part's."""
    return Settings.from_env(settings_groups())
