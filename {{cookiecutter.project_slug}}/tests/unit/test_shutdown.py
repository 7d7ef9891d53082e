from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType

from tests.conftest import SettingsFactory, client_for


async def test_sigterm_turns_readiness_off_at_once(make_settings: SettingsFactory) -> None:
    """SIGTERM makes readiness answer 503 immediately, and the server's own handler still runs."""
    received: list[int] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, server_handler)
    try:
        async with client_for(make_settings()) as client:
            assert (await client.get("/health/ready")).status_code == 200
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0)
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["output"] == "draining"
            assert (await client.get("/health/live")).status_code == 200
            assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is server_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


async def test_resources_close_in_reverse_order(make_settings: SettingsFactory, captured_logs) -> None:  # type: ignore[no-untyped-def]
    """The lifespan closes background tasks, then the database pool, and logs each."""
    import json

    async with client_for(make_settings()):
        pass
    closed = [json.loads(line)["message"] for line in captured_logs() if '"closed ' in line]
    assert closed == ["closed background tasks", "closed database pool"]


async def test_a_part_can_await_the_start_of_draining() -> None:
    """draining_started() waits while the process serves and returns once draining begins."""
    from {{ cookiecutter.package_name }}.shutdown import Lifecycle

    lifecycle = Lifecycle()
    waiter = asyncio.ensure_future(lifecycle.draining_started())
    await asyncio.sleep(0)
    assert not waiter.done()
    lifecycle.begin_draining()
    await asyncio.wait_for(waiter, 1)
    assert lifecycle.draining
