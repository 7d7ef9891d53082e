from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }} import features
from {{ cookiecutter.package_name }}.settings import SettingsError
from tests.conftest import SettingsFactory, refusal


def test_defaults_suit_request_paths(make_settings: SettingsFactory) -> None:
    """With nothing set, the service runs embedded with short pool and check timeouts."""
    settings = make_settings()
    assert settings.db.is_sqlite
    assert settings.db.pool_timeout_seconds <= 5
    assert settings.health.check_timeout_seconds < 2
    assert settings.server.port == {{ cookiecutter.port }}


def test_conventional_names_work_as_they_are(make_settings: SettingsFactory) -> None:
    """DATABASE_URL, PORT, WEB_CONCURRENCY and LOG_LEVEL are read without a prefix."""
    settings = make_settings(
        DATABASE_URL="postgresql://app:pw@db:5432/app",
        PORT="8081",
        WEB_CONCURRENCY="4",
        LOG_LEVEL="debug",
        DB_POOL_SIZE="7",
    )
    assert settings.db.url.get_secret_value() == "postgresql+asyncpg://app:pw@db:5432/app"
    assert (settings.server.port, settings.server.workers, settings.service.log_level) == (8081, 4, "DEBUG")
    assert settings.db.pool_size == 7


def test_asyncpg_scheme_and_sslmode_are_accepted(make_settings: SettingsFactory) -> None:
    """postgresql+asyncpg:// is kept and sslmode survives in the URL for the engine to translate."""
    settings = make_settings(DATABASE_URL="postgresql+asyncpg://u:p@h/db?sslmode=require")
    assert settings.db.url.get_secret_value().endswith("?sslmode=require")


def test_empty_value_counts_as_unset(make_settings: SettingsFactory) -> None:
    """An empty variable falls back to the default instead of failing."""
    assert make_settings(DB_POOL_SIZE="", LOG_LEVEL="").db.pool_size == 10


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"DB_POOL_SIZE": "many"}, "DB_POOL_SIZE", id="not-a-number"),
        pytest.param({"PORT": "70000"}, "PORT", id="port-range"),
        pytest.param({"DATABASE_URL": "mysql://u:p@h/db"}, "DATABASE_URL", id="db-scheme"),
        pytest.param({"LOG_LEVEL": "chatty"}, "LOG_LEVEL", id="log-level"),
        pytest.param({"GRACEFUL_TIMEOUT": "5"}, "GRACEFUL_TIMEOUT", id="drain-fits"),
        pytest.param({"DB_BREAKER_FAILURE_RATE": "1.5"}, "DB_BREAKER_FAILURE_RATE", id="ratio"),
    ],
)
def test_invalid_value_names_the_variable(make_settings: SettingsFactory, env: dict[str, str], variable: str) -> None:
    """Each invalid value is one line that starts with the variable's name."""
    assert variable in refusal(make_settings, **env)


def test_secrets_do_not_appear_in_errors(make_settings: SettingsFactory) -> None:
    """A rejected URL is named, never echoed, since it may carry a password."""
    with pytest.raises(SettingsError) as raised:
        make_settings(DATABASE_URL="mysql://u:hunter2@h/db")
    assert "hunter2" not in str(raised.value)


def test_settings_are_frozen(make_settings: SettingsFactory) -> None:
    """Settings flow one way: nothing can change them after startup."""
    settings = make_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.db.pool_size = 1


def test_readme_documents_every_setting() -> None:
    """Every environment variable the service reads has a row in the README's tables."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    undocumented = {
        name
        for name in features.variables()
        if f"`{name}`" not in readme and f"`*_{name.split('_', 1)[1]}`" not in readme
    }
    assert undocumented == set()
