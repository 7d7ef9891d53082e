"""Alembic migrations, shipped inside the package so that ``python -m {{ cookiecutter.package_name }} migrate`` works in the image.

Migrating is a step of its own (compose's migrate service, the Kubernetes Job, ``make migrate``); the server
migrates by itself only on the embedded SQLite. On PostgreSQL the upgrade holds an advisory lock for its whole
transaction, so that two started at once run one after the other: the second finds the schema current.
"""

from __future__ import annotations

import zlib
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db import create_engine
from ..settings import DbSettings

SCRIPTS = Path(__file__).parent
# The advisory lock's key: one per service, so that services sharing a server don't wait on each other.
LOCK_KEY = zlib.crc32(b"{{ cookiecutter.package_name }}.migrations")


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def shipped_heads() -> frozenset[str]:
    """The revisions this code's migrations end at."""
    return frozenset(_scripts().get_heads())


def shipped_revisions() -> frozenset[str]:
    """Every revision this code ships: a database at any other is ahead of it."""
    return frozenset(script.revision for script in _scripts().walk_revisions())


async def upgrade(cfg: DbSettings, revision: str = "head") -> None:
    # No statement timeout: a migration may rewrite a large table, and may wait for another one's lock.
    engine = create_engine(cfg, timeouts=False)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            await conn.run_sync(lambda sync_conn: command.upgrade(_config(sync_conn), revision))
    finally:
        await engine.dispose()


async def applied(engine: AsyncEngine) -> frozenset[str]:
    """The revisions the database is at: none before its first migration."""
    async with engine.connect() as conn:
        has_table = await conn.run_sync(lambda sync_conn: sync_conn.dialect.has_table(sync_conn, "alembic_version"))
        if not has_table:
            return frozenset()
        return frozenset(await conn.scalars(text("SELECT version_num FROM alembic_version")))


async def migrate(cfg: DbSettings) -> str:
    """Apply the migrations; one line saying which revisions the database moved between, or that none."""
    engine = create_engine(cfg, timeouts=False)
    try:
        before = await applied(engine)
        await upgrade(cfg)
        after = await applied(engine)
    finally:
        await engine.dispose()
    at = ", ".join(sorted(after)) or "no revision (this code ships no migration yet)"
    if before == after:
        return f"migrate: nothing to apply, the database is at {at}"
    return f"migrate: {', '.join(sorted(before)) or 'an empty database'} -> {at}"


async def new_revision(cfg: DbSettings, message: str) -> None:
    """Autogenerate a revision from the difference between the models and the database."""
    engine = create_engine(cfg)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync_conn: command.revision(_config(sync_conn), message, autogenerate=True))
    finally:
        await engine.dispose()
