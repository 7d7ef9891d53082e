"""Command line: ``python -m {{ cookiecutter.package_name }} serve | check-config``, and the parts' commands
(the database's ``migrate`` and ``revision -m MESSAGE``, and any optional part's)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import database, features
from .settings import Settings, SettingsError


def _masked(value: Any) -> Any:
    """``value`` with each ``SecretStr`` (``Settings.secrets()``) masked, inside mappings and lists too."""
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
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(item) for item in value]
    return value


def check_config(settings: Settings) -> str:
    """The effective settings as JSON, secrets masked; the optional parts' groups sit beside the rest."""
    from .db import effective_pool

    effective = settings.model_dump()
    effective |= effective.pop("features")
    effective["db"] |= effective_pool(settings.db)  # what the engine runs, which SQLite's pool decides
    return orjson.dumps(_masked(effective), option=orjson.OPT_INDENT_2).decode()


def serve(settings: Settings) -> int:
    """The development server: one process, reload off, migrations applied first on the embedded SQLite; the API
    on 127.0.0.1:$PORT and the management routes on 127.0.0.1:$MANAGEMENT_PORT, one app and one lifespan."""
    import socket

    import uvicorn

    from . import migrations
    from .app import create_app
    from .ports import unavailable
    from .protocol import bounded_protocol

    host = "127.0.0.1"
    ports = {"PORT": settings.server.port, "MANAGEMENT_PORT": settings.server.management_port}
    for variable, port in ports.items():
        if problem := unavailable(host, port, variable):
            print(problem, file=sys.stderr)
            return 1
    if settings.db.is_sqlite:
        asyncio.run(migrations.upgrade(settings.db))
    app = create_app(settings)  # first: it sets up the JSON logging
    config = uvicorn.Config(
        app,
        http=bounded_protocol(settings.server),
        limit_concurrency=settings.server.limit_concurrency,
        log_config=None,
        access_log=False,
    )
    # uvicorn.run binds one socket; a Server given several serves each of them (as under gunicorn).
    sockets = [socket.create_server((host, port)) for port in ports.values()]
    api, management = (f"http://{host}:{port}" for port in ports.values())
    logging.getLogger(__package__).info("serving", extra={"api": api, "management": management})
    server = uvicorn.Server(config)
    # uvicorn drains on SIGTERM or SIGINT, then raises the signal again for the handler it found before: a no-op
    # here, so that a clean drain ends with 0, not by the signal (exit 143, and make's "*** Terminated").
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=sockets)
    return 0 if server.started else 3  # 3, as uvicorn: the start failed, and its lines say why


def main(argv: list[str] | None = None) -> int:
    parts = (database.feature, *features.installed())
    parser = argparse.ArgumentParser(prog="{{ cookiecutter.package_name }}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the development server on 127.0.0.1:$PORT")
    commands.add_parser("check-config", help="print the effective settings, secrets masked")
    runners = {}
    for part in parts:
        for command in part.commands:
            arguments = commands.add_parser(command.name, help=command.help)
            if command.arguments is not None:
                command.arguments(arguments)
            runners[command.name] = command.run
    args = parser.parse_args(argv)
    try:
        settings = features.load_settings()
    except SettingsError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        return 2

    from .observability import configure_logging

    if args.command == "check-config":
        print(check_config(settings))
        return 0
    if args.command == "serve":
        return serve(settings)
    configure_logging(settings.service.log_level)  # a command's log lines are JSON, as the server's
    return runners[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
