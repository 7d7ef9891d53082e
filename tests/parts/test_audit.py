"""The audit part, plugged in as one module, reaches every hook a part has."""

from __future__ import annotations

import pytest

from PACKAGE import features
from PACKAGE.__main__ import main
from PACKAGE.features.audit import AuditSettings
from tests.conftest import SettingsFactory, client_for


def test_its_settings_models_and_command_are_the_services(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its settings group is read with the others, its table is among the models alembic compares, its command runs."""
    assert make_settings(AUDIT_MAX_ENTRIES="7").feature(AuditSettings).max_entries == 7
    assert "AUDIT_MAX_ENTRIES" in features.variables()
    assert any(module.__name__.endswith(".features.audit") for module in features.models())
    assert main(["audit-tables"]) == 0
    assert "audit_entries" in capsys.readouterr().out.split()


async def test_its_lifespan_watcher_and_error_hook_see_each_request(make_settings: SettingsFactory) -> None:
    """Its lifespan provides the trail the route reads, its watcher sees each request, its hook each 500."""
    async with client_for(make_settings()) as client:
        assert (await client.get("/test/crash")).status_code == 500
        assert (await client.get("/test/bug/missing-file")).status_code == 500
        trail = (await client.get("/audit")).json()
    assert trail["requests"][:2] == [["/test/crash", 500], ["/test/bug/{kind}", 500]]
    assert trail["errors"] == ["RuntimeError at /test/crash", "FileNotFoundError at /test/bug/missing-file"]
