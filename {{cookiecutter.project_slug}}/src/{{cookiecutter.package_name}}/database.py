"""The database as a part of the service, plugged in like the optional ones: its lifespan and its commands.

The lifespan builds the engine, its guard, the schema guard and the checks, provides ``Database``, and disposes
of the pool when it closes, last of all (it opens first). ``migrate`` and ``revision`` are its commands.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from . import db, migrations
from .features import Assembly, Command, Feature
from .resilience import Guard
from .schema import SchemaGuard, schema_check
from .settings import Settings
from .shutdown import closing


@asynccontextmanager
async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
    settings = assembly.settings
    engine = db.create_engine(settings.db, application_name=settings.service.name)
    dispose = closing("database pool", engine.dispose, settings.server.shutdown_close_seconds)
    try:
        critical = settings.health.db_critical
        guard = Guard(
            "database",
            settings.db_resilience,
            db.ERRORS,
            assembly.metrics.guard("database"),
            call_timeout_seconds=settings.db.statement_timeout_ms / 1000,
            critical=critical,
        )
        assembly.guards.add(guard)
        schema = SchemaGuard(
            lambda: migrations.applied(engine), heads=migrations.shipped_heads(), known=migrations.shipped_revisions()
        )
        assembly.checks.add(db.ping_check(engine, critical=critical))
        assembly.checks.add(schema_check(schema, critical=critical))
        if db.pool_stats(engine) is not None:
            assembly.checks.add(db.pool_check(engine))
        assembly.provide(db.Database, db.Database(engine, guard, schema, assembly.metrics))
        yield
    finally:
        await dispose()


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    print(asyncio.run(migrations.migrate(settings.db)))
    return 0


def _message(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--message", required=True)


def _revision(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(migrations.new_revision(settings.db, args.message))
    return 0


feature = Feature(
    "database",
    lifespan=lifespan,
    commands=[
        Command("migrate", "apply database migrations", _migrate),
        Command("revision", "autogenerate a migration from the models", _revision, arguments=_message),
    ],
)
