from __future__ import annotations

import json

import pytest

from {{ cookiecutter.package_name }}.__main__ import main
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
