from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from {{ cookiecutter.package_name }} import features
from {{ cookiecutter.package_name }}.__main__ import check_config, main
from {{ cookiecutter.package_name }}.settings import Group, Settings, SettingsError, group_config
from tests.conftest import SettingsFactory


def test_check_config_masks_secrets(make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config prints the effective settings with passwords and tokens masked."""
    make_settings(
        DATABASE_URL="postgresql://app:db-password@db/app",
        HEALTH_TOKEN="health-token",
    )
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    for secret in ("db-password", "health-token"):
        assert secret not in out
    effective = json.loads(out)
    assert effective["db"]["url"] == "postgresql+asyncpg://app:***@db/app"
    assert effective["health"]["token"] == "**********"


def test_bad_setting_stops_with_the_variable_name(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid value exits 2 with a line naming the variable."""
    make_settings()
    monkeypatch.setenv("DB_POOL_TIMEOUT_SECONDS", "-1")
    assert main(["check-config"]) == 2
    assert "DB_POOL_TIMEOUT_SECONDS" in capsys.readouterr().err


def test_a_new_shape_of_secret_is_masked_everywhere(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A setting that holds a list of secrets is found by Settings.secrets(), masked by check-config, and never
    echoed in the line that refuses a bad value."""

    class Keys(Group):
        model_config = group_config("KEYS_")
        api_keys: list[SecretStr] = []

    make_settings()
    groups: dict[str, type[Group]] = {**features.settings_groups(), "keys": Keys}
    monkeypatch.setenv("KEYS_API_KEYS", '["first-key-1234", "second-key-5678"]')
    settings = Settings.from_env(groups)
    assert {"first-key-1234", "second-key-5678"} <= {secret.get_secret_value() for secret in settings.secrets()}
    shown = check_config(settings)
    assert "first-key-1234" not in shown and "second-key-5678" not in shown
    assert json.loads(shown)["keys"]["api_keys"] == ["**********", "**********"]
    monkeypatch.setenv("KEYS_API_KEYS", '["leaky-key-1234", {"not": "a string"}]')
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(groups)
    assert str(refused.value).startswith("KEYS_API_KEYS:") and "leaky-key-1234" not in str(refused.value)


def test_check_config_shows_the_pool_sqlite_runs(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the embedded SQLite, check-config shows the pool SQLAlchemy sizes itself, not DB_POOL_* it ignores."""
    make_settings(DB_POOL_SIZE="7", DB_MAX_OVERFLOW="1")
    assert main(["check-config"]) == 0
    db = json.loads(capsys.readouterr().out)["db"]
    assert (db["pool_size"], db["max_overflow"], db["pool_timeout_seconds"]) == (5, 10, 30.0)


def test_check_config_shows_the_pool_settings_on_postgresql(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """On PostgreSQL, the engine's pool is the one DB_POOL_* describe, and check-config shows it."""
    make_settings(DATABASE_URL="postgresql://app:pw@db/app", DB_POOL_SIZE="7", DB_MAX_OVERFLOW="1")
    assert main(["check-config"]) == 0
    db = json.loads(capsys.readouterr().out)["db"]
    assert (db["pool_size"], db["max_overflow"], db["pool_timeout_seconds"]) == (7, 1, 3.0)


def test_migrate_says_what_it_did_and_when_nothing_was_to_do(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """`migrate` ends with one line: the revisions it moved between, then, run again, that nothing was to apply."""
    make_settings()
    assert main(["migrate"]) == 0
    first = capsys.readouterr().out.splitlines()[-1]
    assert first.startswith("migrate: ")
    assert main(["migrate"]) == 0
    again = capsys.readouterr().out.splitlines()[-1]
    assert again.startswith("migrate: nothing to apply, the database is at ")
