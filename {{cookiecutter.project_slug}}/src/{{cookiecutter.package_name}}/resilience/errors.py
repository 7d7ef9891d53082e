"""The one error a guard raises for its dependency's failure, and how a guard tells its driver's failures apart.

Each guard is given the ``Classifier`` of its own client (the database's in ``db.py``, Redis's in its part), so
that only a failure of the call it guards answers 503: the same ``OSError`` or ``TimeoutError`` raised by a
route's own code is a bug, and a 500.
"""

from __future__ import annotations

from typing import Protocol


class DependencyUnavailable(Exception):
    """A guarded call failed by its dependency's fault (connection lost, timed out, pool exhausted)."""

    def __init__(self, name: str, detail: str | None = None, *, retry_after: float = 1.0) -> None:
        self.name = name
        self.detail = detail or f"The {name} is unavailable."
        self.retry_after = retry_after
        super().__init__(self.detail)


class Classifier(Protocol):
    """One client's errors: which are the dependency's failures, and which of those a second attempt may cure."""

    def is_failure(self, exc: BaseException) -> bool:
        """Counts against the breaker: connection loss, timeouts. Never a caller's error or a refusal of ours."""

    def is_transient(self, exc: BaseException) -> bool:
        """A failure worth another attempt (a timeout is not: repeating a slow call adds load)."""
