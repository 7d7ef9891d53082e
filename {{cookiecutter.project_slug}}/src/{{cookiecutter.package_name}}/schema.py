"""The schema guard: the service serves a database that is at the migrations it ships, or past them.

While the database is behind (a fresh one, or a deploy whose migration has not run yet) readiness fails with
"migrations pending", and a request that meets a missing table or column answers 503, not 500. A database
ahead of the code is fine: during an expand/contract rollout the pods of the previous release keep serving
the newer schema. Once the database has been seen current the guard stops asking, since migrations only move
forward: a ready pod spends nothing on it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable

from .checks import Check, Result

log = logging.getLogger(__name__)

# PostgreSQL's undefined_table and undefined_column.
_MISSING_SQLSTATES = frozenset({"42P01", "42703"})


class SchemaGuard:
    def __init__(
        self, applied: Callable[[], Awaitable[frozenset[str]]], *, heads: frozenset[str], known: frozenset[str]
    ) -> None:
        self.applied = applied  # reads the database's revisions
        self.heads = heads
        self.known = known
        self.current = False
        self._reported: str | None = None

    async def pending(self) -> str | None:
        """Why the database is behind the code, or None when it is not."""
        if self.current:
            return None
        applied = await self.applied()
        if applied - self.known or applied == self.heads:  # ahead (a revision this code does not know), or at head
            self.current = True
            return None
        reason = f"migrations pending: the database is at {_names(applied)}, this code needs {_names(self.heads)}"
        if reason != self._reported:  # once per change, not on every probe and request
            log.warning(reason)
            self._reported = reason
        return reason


def _names(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "no revision"


def missing_object(exc: BaseException) -> bool:
    """Whether a statement failed on a table or column that the database does not have."""
    orig = getattr(exc, "orig", None)
    root = getattr(orig, "__cause__", None) or orig  # the driver's error, behind SQLAlchemy's adapter
    if getattr(root, "sqlstate", None) in _MISSING_SQLSTATES:
        return True
    return isinstance(root, sqlite3.OperationalError) and str(root).startswith(("no such table", "no such column"))


def schema_check(guard: SchemaGuard, *, critical: bool) -> Check:
    """Fails while the database is behind the migrations this code ships."""

    async def run() -> Result:
        reason = await guard.pending()
        return Result("pass") if reason is None else Result("fail", output=reason)

    return Check("database:schema", "datastore", critical, run)
