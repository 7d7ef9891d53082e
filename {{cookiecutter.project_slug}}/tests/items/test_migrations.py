"""Migrations on real PostgreSQL: two started at once, and the schema guard while the database is behind."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from {{ cookiecutter.package_name }} import migrations
from {{ cookiecutter.package_name }}.settings import DbSettings
from tests.conftest import SettingsFactory, serve
from tests.failures.conftest import gunicorn
from tests.routes import create_test_app
from tests.servers import ServerHandle


@pytest.fixture
async def empty_database(postgres: ServerHandle) -> AsyncIterator[str]:
    """A database of its own, with no migration applied."""
    admin_url: str = getattr(postgres, "admin_url")  # noqa: B009  (both PostgreSQL handles have it)
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield admin_url.rpartition("/")[0] + f"/{name}"
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


async def waiting_for_the_lock(conn: asyncpg.Connection) -> int:
    # A bigint key below 2**32 shows as objid (classid 0).
    query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1"
    return int(await conn.fetchval(query, migrations.LOCK_KEY))


async def test_two_migrations_started_at_once_run_one_after_the_other(empty_database: str) -> None:
    """Both wait on the advisory lock while another session holds it; released, both succeed and the
    database ends at the shipped head (without the lock, the second would fail on tables the first created)."""
    holder = await asyncpg.connect(empty_database)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrations.LOCK_KEY)
        cfg = DbSettings(url=SecretStr(empty_database))
        runs = [asyncio.create_task(migrations.upgrade(cfg)) for _ in range(2)]
        deadline = time.monotonic() + 20
        while await waiting_for_the_lock(holder) < 2:
            assert time.monotonic() < deadline, "the two migrations never waited on the lock"
            assert not any(run.done() for run in runs), [run.exception() for run in runs if run.done()]
            await asyncio.sleep(0.05)
        await holder.execute("SELECT pg_advisory_unlock($1)", migrations.LOCK_KEY)
        await asyncio.wait_for(asyncio.gather(*runs), 30)
        versions = await holder.fetch("SELECT version_num FROM alembic_version")
        assert {row["version_num"] for row in versions} == migrations.shipped_heads()
    finally:
        await holder.close()


async def test_a_database_behind_the_code_answers_503_until_migrated(
    make_settings: SettingsFactory, empty_database: str
) -> None:
    """One revision behind (a fresh database): readiness 503 saying "migrations pending", a write and a read
    503 problem+json rather than a 500; once the migration has run, ready and serving."""
    settings = make_settings(DATABASE_URL=empty_database, HEALTH_CACHE_TTL_SECONDS="0")
    async with serve(create_test_app(settings)) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert "migrations pending" in ready.json()["output"]
        print(f"\n[figure] readiness on a database one revision behind: {ready.json()['output']}")
        for response in (
            await client.post("/api/v1/items", json={"name": "early"}),
            await client.get("/api/v1/items/1"),
            await client.get("/api/v1/items"),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert "migrations pending" in response.json()["detail"]
            assert response.headers["retry-after"]
        await migrations.upgrade(settings.db)
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.post("/api/v1/items", json={"name": "late"})).status_code == 201


async def test_a_database_ahead_of_the_code_is_served(make_settings: SettingsFactory, empty_database: str) -> None:
    """During an expand/contract rollout the previous release serves a schema migrated past its own head."""
    await migrations.upgrade(DbSettings(url=SecretStr(empty_database)))
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("UPDATE alembic_version SET version_num = 'ffff_from_the_next_release'")
    finally:
        await conn.close()
    settings = make_settings(DATABASE_URL=empty_database)
    async with serve(create_test_app(settings)) as client:
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.post("/api/v1/items", json={"name": "served"})).status_code == 201


def test_gunicorn_migrates_the_embedded_database_once_before_the_workers_start(tmp_path: Path) -> None:
    """On SQLite with no migration step, the master migrates; both workers then write on the first request."""
    database = f"sqlite:///{tmp_path / 'embedded.db'}"
    with gunicorn(tmp_path, DATABASE_URL=database, workers=2) as server:
        created = [httpx.post(f"{server.url}/api/v1/items", json={"name": f"n{i}"}, timeout=5) for i in range(8)]
        assert [response.status_code for response in created] == [201] * 8
        assert httpx.get(f"{server.url}/health/ready", timeout=5).status_code == 200
    upgrades = [line for line in server.log.read_text().splitlines() if "Running upgrade" in line]
    assert len(upgrades) == len(migrations.shipped_revisions()), upgrades


def test_the_migrate_command_says_what_it_applies_once(tmp_path: Path) -> None:
    """`migrate` logs each revision it applies as a JSON line; run again, it applies nothing."""
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}", "migrate"]
    said = [subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout for _ in range(2)]
    applied = [json.loads(line)["message"] for line in said[0].splitlines() if "Running upgrade" in line]
    assert len(applied) == len(migrations.shipped_revisions()), said[0]
    assert "Running upgrade" not in said[1]
