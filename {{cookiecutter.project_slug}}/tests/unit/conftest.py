"""Fixtures of the unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest
from uvicorn.server import ServerState

from tests.unit import wire


class Connect(Protocol):
    def __call__(self, app: wire.App = ..., **config: Any) -> wire.Connection: ...


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Connections to the bounded protocol (tests/unit/wire.py); request cycles still running at the end of the
    test are cancelled."""
    server = ServerState()

    def make(app: wire.App = wire.hello, **config: Any) -> wire.Connection:
        return wire.connect(server, app, **config)

    yield make
    for task in server.tasks:
        task.cancel()
    await asyncio.gather(*server.tasks, return_exceptions=True)
