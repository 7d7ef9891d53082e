"""Command line: ``python -m {{ cookiecutter.package_name }} serve | check-config | migrate | revision -m MESSAGE``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .settings import DbSettings, Settings, SettingsError


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        try:
            parts = urlsplit(raw)
            if parts.username and parts.password is None:  # a key as the URL's user name (a DSN): hide it
                return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
            # A URL keeps everything but its password.
            return make_url(raw).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):
            return "**********"
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    return value


def check_config(settings: Settings) -> str:
    """The effective settings as JSON, secrets masked; the optional parts' groups sit beside the rest."""
    from .db import effective_pool

    effective = settings.model_dump()
    effective |= effective.pop("features")
    effective["db"] |= effective_pool(settings.db)  # what the engine runs, which SQLite's pool decides
    return orjson.dumps(_masked(effective), option=orjson.OPT_INDENT_2).decode()


async def migrate(cfg: DbSettings) -> str:
    """Apply the migrations; one line saying which revisions the database moved between, or that none."""
    from . import migrations
    from .db import create_engine

    engine = create_engine(cfg, timeouts=False)
    try:
        before = await migrations.applied(engine)
        await migrations.upgrade(cfg)
        after = await migrations.applied(engine)
    finally:
        await engine.dispose()
    at = ", ".join(sorted(after)) or "no revision (this code ships no migration yet)"
    if before == after:
        return f"migrate: nothing to apply, the database is at {at}"
    return f"migrate: {', '.join(sorted(before)) or 'an empty database'} -> {at}"


def serve(settings: Settings) -> int:
    """The development server: one process, reload off, migrations applied first on the embedded SQLite."""
    import uvicorn

    from . import migrations
    from .app import create_app
    from .ports import unavailable
    from .protocol import bounded_protocol

    host = "127.0.0.1"
    if problem := unavailable(host, settings.server.port):
        print(problem, file=sys.stderr)
        return 1
    if settings.db.is_sqlite:
        asyncio.run(migrations.upgrade(settings.db))
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=settings.server.port,
        http=bounded_protocol(settings.server),
        limit_concurrency=settings.server.limit_concurrency,
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    # uvicorn drains on SIGTERM or SIGINT, then raises the signal again for the handler it found before: a no-op
    # here, so that a clean drain ends with 0, not by the signal (exit 143, and make's "*** Terminated").
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    return 0 if server.started else 3  # 3, as uvicorn: the start failed, and its lines say why


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="{{ cookiecutter.package_name }}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the development server on 127.0.0.1:$PORT")
    commands.add_parser("check-config", help="print the effective settings, secrets masked")
    commands.add_parser("migrate", help="apply database migrations")
    revision = commands.add_parser("revision", help="autogenerate a migration from the models")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        return 2

    from . import migrations
    from .observability import configure_logging

    if args.command in ("migrate", "revision"):
        configure_logging(settings.service.log_level)  # alembic says what it applies, as JSON lines
    if args.command == "check-config":
        print(check_config(settings))
    elif args.command == "migrate":
        print(asyncio.run(migrate(settings.db)))
    elif args.command == "revision":
        asyncio.run(migrations.new_revision(settings.db, args.message))
    else:
        return serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
