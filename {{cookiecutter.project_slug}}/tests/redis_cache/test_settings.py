"""Redis's settings: read with the rest, validated with the rest, shown masked by check-config."""

from __future__ import annotations

import json

import pytest

from {{ cookiecutter.package_name }}.__main__ import main
from {{ cookiecutter.package_name }}.features.redis_cache import RedisResilienceSettings, RedisSettings
from tests.conftest import SettingsFactory, refusal


def test_without_a_url_redis_is_off(make_settings: SettingsFactory) -> None:
    """With nothing set, no Redis is configured: the in-process cache is the only cache."""
    assert not make_settings().feature(RedisSettings).enabled


def test_redis_variables_are_read(make_settings: SettingsFactory) -> None:
    """REDIS_URL is read without a prefix, the rest with REDIS_, the criticality with the health settings."""
    settings = make_settings(
        REDIS_URL="rediss://:pw@cache:6380/0",
        REDIS_SOCKET_TIMEOUT_SECONDS="0.2",
        REDIS_BULKHEAD_LIMIT="7",
        HEALTH_REDIS_CRITICAL="true",
    )
    redis = settings.feature(RedisSettings)
    assert redis.enabled and redis.critical
    assert redis.socket_timeout_seconds == 0.2
    assert settings.feature(RedisResilienceSettings).bulkhead_limit == 7


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"REDIS_URL": "http://cache"}, "REDIS_URL", id="redis-scheme"),
        pytest.param({"REDIS_SENTINELS": "a:1,b"}, "REDIS_SENTINELS", id="sentinel-format"),
        pytest.param({"REDIS_SENTINELS": "a:26379"}, "REDIS_SENTINEL_MASTER", id="sentinel-master"),
        pytest.param({"REDIS_MAX_CONNECTIONS": "0"}, "REDIS_MAX_CONNECTIONS", id="pool-size"),
    ],
)
def test_invalid_value_names_the_variable(make_settings: SettingsFactory, env: dict[str, str], variable: str) -> None:
    """Each invalid Redis value is one line that starts with the variable's name."""
    assert variable in refusal(make_settings, **env)


def test_check_config_masks_the_redis_password(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config shows Redis's group beside the others, its URL without the password."""
    make_settings(REDIS_URL="redis://:redis-password@cache/0")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "redis-password" not in out
    assert json.loads(out)["redis"]["url"] == "redis://:***@cache/0"
