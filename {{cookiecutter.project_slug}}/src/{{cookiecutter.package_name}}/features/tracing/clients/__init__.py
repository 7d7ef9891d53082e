"""Spans of the calls the service's clients make, one module per client, each from its maintained
instrumentation; a module is here only when the service has its client.

Each module's ``instrument(provider)`` starts the client's spans and returns what stops them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider

Instrument = Callable[[TracerProvider], Callable[[], None]]


def instrument(provider: TracerProvider) -> Callable[[], None]:
    """Start every client's spans; returns the undo of them all."""
    undo = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda found: found.name):
        start: Instrument = importlib.import_module(f"{__name__}.{module.name}").instrument
        undo.append(start(provider))

    def uninstrument() -> None:
        for step in reversed(undo):
            step()

    return uninstrument
