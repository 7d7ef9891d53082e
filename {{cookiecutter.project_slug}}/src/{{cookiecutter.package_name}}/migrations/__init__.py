"""Alembic migrations, shipped inside the package so that ``python -m {{ cookiecutter.package_name }} migrate`` works in the image."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from ..db import create_engine
from ..settings import DbSettings

SCRIPTS = Path(__file__).parent


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


async def upgrade(cfg: DbSettings, revision: str = "head") -> None:
    engine = create_engine(cfg)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync_conn: command.upgrade(_config(sync_conn), revision))
    finally:
        await engine.dispose()


async def new_revision(cfg: DbSettings, message: str) -> None:
    """Autogenerate a revision from the difference between the models and the database."""
    engine = create_engine(cfg)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync_conn: command.revision(_config(sync_conn), message, autogenerate=True))
    finally:
        await engine.dispose()
