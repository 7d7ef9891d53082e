"""Bulkhead: at most ``limit`` concurrent calls to one dependency, with a short wait for a slot."""

from __future__ import annotations

import asyncio

from .deadline import bounded


class BulkheadFull(Exception):
    """Every slot stayed busy for the whole wait."""

    def __init__(self, name: str, retry_after: float = 1.0) -> None:
        super().__init__(f"bulkhead {name!r} is full")
        self.name = name
        self.retry_after = retry_after


class Bulkhead:
    def __init__(self, name: str, limit: int, wait_seconds: float) -> None:
        self.name = name
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(limit)

    @property
    def in_use(self) -> int:
        return self.limit - self._slots._value  # asyncio exposes no counter

    async def acquire(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # returns at once: no timer on the happy path
            return
        try:
            async with asyncio.timeout(bounded(self.wait_seconds)):
                await self._slots.acquire()
        except TimeoutError:
            raise BulkheadFull(self.name) from None

    def release(self) -> None:
        self._slots.release()
