"""The bound on request bodies (middleware.BodyLimits), in process; the request head's bounds and every attack
under real gunicorn are in tests/failures/test_hostile_clients.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from tests.conftest import SettingsFactory, client_for

PROBLEM = "application/problem+json"
KiB = 1024


class Body:
    """A request body sent in 1 KiB parts, counting how many the service pulled."""

    def __init__(self, parts: int, pause: float = 0.0) -> None:
        self.parts, self.pause, self.pulled = parts, pause, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"a": "'
        for _ in range(self.parts):
            self.pulled += 1
            await asyncio.sleep(self.pause)
            yield b"x" * KiB
        yield b'"}'


def refused(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers["content-type"] == PROBLEM
        and response.headers["connection"] == "close"
        and response.json()["status"] == status
    )


async def test_a_declared_length_over_the_limit_is_refused_before_any_of_the_body_is_read(
    make_settings: SettingsFactory,
) -> None:
    body = Body(8)
    async with client_for(make_settings(MAX_BODY_BYTES="4096")) as client:
        headers = {"content-type": "application/json", "content-length": str(8 * KiB + 9)}
        response = await client.post("/test/echo", content=body, headers=headers)
    assert refused(response, 413), response.text
    assert body.pulled == 0


async def test_a_chunked_body_is_cut_at_the_limit(make_settings: SettingsFactory) -> None:
    """Without a declared length, the body is counted as it arrives and refused once it passes the limit."""
    body = Body(1024)
    async with client_for(make_settings(MAX_BODY_BYTES="4096")) as client:
        response = await client.post("/test/echo", content=body, headers={"content-type": "application/json"})
    assert refused(response, 413), response.text
    assert body.pulled <= 5


async def test_a_body_within_the_limit_is_served(make_settings: SettingsFactory) -> None:
    async with client_for(make_settings(MAX_BODY_BYTES="4096")) as client:
        declared = await client.post("/test/echo", json={"a": "x" * 3000})
        chunked = await client.post("/test/echo", content=Body(3), headers={"content-type": "application/json"})
    assert declared.json() == chunked.json() == {"keys": 1}


async def test_a_route_may_allow_larger_bodies_explicitly(make_settings: SettingsFactory) -> None:
    """/test/upload declares 4 MiB: 2 MiB passes there and is refused on a route with the default 1 MiB."""
    two_mib = b"x" * (2 * 1024 * KiB)
    async with client_for(make_settings()) as client:
        allowed = await client.post("/test/upload", content=two_mib)
        default = await client.post("/test/echo", content=two_mib, headers={"content-type": "application/json"})
        over = await client.post("/test/upload", content=two_mib * 3)
    assert allowed.json() == {"bytes": len(two_mib)}
    assert refused(default, 413) and refused(over, 413)


async def test_a_body_that_stops_arriving_gets_408(make_settings: SettingsFactory) -> None:
    body = Body(3, pause=1.0)
    async with client_for(make_settings(BODY_READ_TIMEOUT_SECONDS="0.2")) as client:
        response = await client.post("/test/echo", content=body, headers={"content-type": "application/json"})
    assert refused(response, 408), response.text
    assert body.pulled == 1
