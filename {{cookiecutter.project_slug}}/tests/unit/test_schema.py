"""The schema guard's decisions, and which database errors count as a missing table or column."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from {{ cookiecutter.package_name }}.db import create_engine
from {{ cookiecutter.package_name }}.schema import SchemaGuard, missing_object
from {{ cookiecutter.package_name }}.settings import DbSettings


def guard_over(*answers: frozenset[str]) -> tuple[SchemaGuard, list[int]]:
    calls = [0]

    async def applied() -> frozenset[str]:
        calls[0] += 1
        return answers[min(calls[0], len(answers)) - 1]

    return SchemaGuard(applied, heads=frozenset({"0002"}), known=frozenset({"0001", "0002"})), calls


async def test_behind_is_pending_until_the_head_then_never_asked_again() -> None:
    guard, calls = guard_over(frozenset(), frozenset({"0001"}), frozenset({"0002"}))
    assert await guard.pending() == "migrations pending: the database is at no revision, this code needs 0002"
    assert await guard.pending() == "migrations pending: the database is at 0001, this code needs 0002"
    assert await guard.pending() is None
    assert await guard.pending() is None
    assert calls == [3]


async def test_a_revision_the_code_does_not_know_is_ahead_of_it() -> None:
    guard, _ = guard_over(frozenset({"0003"}))
    assert await guard.pending() is None


@pytest.mark.parametrize(
    ("statement", "missing"),
    [
        ("SELECT * FROM no_such_table", True),
        ("SELECT no_such_column FROM present", True),
        ("INSERT INTO present (id) VALUES (1), (1)", False),
        ("SELEC 1", False),
    ],
)
async def test_missing_object_on_sqlite(tmp_path: Path, statement: str, missing: bool) -> None:
    engine = create_engine(DbSettings(url=SecretStr(f"sqlite:///{tmp_path / 'db.sqlite'}")))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE present (id INTEGER PRIMARY KEY)"))
        with pytest.raises(DBAPIError) as raised:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        assert missing_object(raised.value) is missing
    finally:
        await engine.dispose()
