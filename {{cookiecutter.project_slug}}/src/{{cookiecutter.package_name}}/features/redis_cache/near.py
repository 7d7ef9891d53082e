"""The near cache: values this worker read from Redis lately, kept in process until Redis says they changed.

Redis's server-assisted client-side caching in broadcasting mode (``CLIENT TRACKING ON BCAST``) sends one
connection per worker, the listener, the name of every key written, deleted, expired or evicted, as messages
on ``__redis__:invalidate``; the listener drops those keys here. A copy is served only while that channel is
proven live: the listener sends a PING every ``staleness / 2`` seconds and copies are served only while a ping
sent less than ``staleness`` seconds ago has been answered. Redis answers a connection in order, so by the
time that answer arrives, the invalidation of every write that completed before the ping left has arrived
before it: a write through any worker is never served stale here once ``staleness`` seconds have passed since
it completed, whether Redis is up, hung, down or restarting. When the connection breaks every copy is dropped,
and none is kept again until the listener is tracking and answered.

A read that was on its way while its key changed (or while the listener reconnected) must not keep the value
it brings back, which may predate the change: ``begin``/``end`` around each read see to that.

redis-py's own client-side cache (``cache_config``) has no asyncio client and tracks keys per pooled RESP3
connection; this is the broadcasting variant, on a single RESP2 connection per worker, in about a hundred lines.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool

from ...cache import LocalCache

log = logging.getLogger(__name__)

CHANNEL = b"__redis__:invalidate"


class ChannelSilent(Exception):
    """The listener's pings went unanswered for too long: Redis hangs or the network lost the connection."""


class NearCache:
    def __init__(
        self,
        pool: ConnectionPool,
        values: LocalCache,
        staleness_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.values = values
        self.staleness = staleness_seconds
        self.clock = clock
        self._answered = -math.inf  # when the newest answered ping was sent, since tracking began
        self._pings: deque[float] = deque()
        self._generation = 0  # moves when the channel (re)starts or drops everything: reads begun before can't keep
        self._fetching: dict[str, int] = {}
        self._spoiled: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        return self.clock() - self._answered < self.staleness

    def get(self, key: str) -> bytes | None:
        return self.values.get(key) if self.live else None

    def begin(self, key: str) -> int:
        """A read of ``key`` from Redis starts; pass what this returns to ``end``."""
        self._fetching[key] = self._fetching.get(key, 0) + 1
        return self._generation

    def end(self, key: str, generation: int, value: bytes | None) -> None:
        """The read of ``key`` brought ``value``: keep it unless the key changed or the channel restarted meanwhile."""
        left = self._fetching.pop(key) - 1
        spoiled = key in self._spoiled
        if left:
            self._fetching[key] = left
        else:
            self._spoiled.discard(key)
        if value is not None and not spoiled and generation == self._generation and self.live:
            self.values.set(key, value)

    def invalidate(self, key: str) -> None:
        self.values.delete(key)
        if key in self._fetching:
            self._spoiled.add(key)

    def drop_all(self) -> None:
        self.values.clear()
        self._spoiled.update(self._fetching)
        self._generation += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="redis near cache")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        """Listen, and listen again after every break, backing off up to 5 s while Redis is away."""
        pause = 0.1
        while True:
            try:
                await self._listen()
            except Exception as exc:  # any break means the same: drop everything, reconnect
                if self._answered > -math.inf:
                    log.warning("near cache dropped: its invalidation channel broke", extra={"error": repr(exc)})
                    pause = 0.1
                else:
                    log.debug("near cache listener could not start", extra={"error": repr(exc)})
            self._answered = -math.inf
            self._pings.clear()
            self.drop_all()
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not secrecy
            pause = min(pause * 2, 5.0)

    async def _listen(self) -> None:
        # A connection of its own, outside the pool, speaking RESP2 (invalidations as plain pub/sub messages),
        # without the driver's health-check PING, which a subscribed connection would answer out of turn.
        options = self.pool.connection_kwargs | {"protocol": 2, "health_check_interval": 0}
        options.pop("maint_notifications_pool_handler", None)  # the driver's RESP3-only notices; not here
        options.pop("maint_notifications_config", None)
        connection: AbstractConnection = self.pool.connection_class(**options)
        try:
            await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            client_id = await _command(connection, "CLIENT", "ID")
            await _command(connection, "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST")
            await _command(connection, "SUBSCRIBE", CHANNEL)
            self.drop_all()  # reads begun before tracking began may bring values whose change it never saw
            log.info("near cache listening for invalidations")
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(connection))
                group.create_task(self._ping(connection))
        finally:
            await connection.disconnect(nowait=True)

    async def _read(self, connection: AbstractConnection) -> None:
        while True:
            self._on_reply(await connection.read_response(timeout=math.inf))

    def _on_reply(self, reply: Any) -> None:
        kind = reply[0]
        if kind == b"pong":
            self._answered = self._pings.popleft()
        elif kind == b"message" and reply[1] == CHANNEL:
            keys = reply[2]
            if keys is None:  # FLUSHDB, FLUSHALL
                self.drop_all()
            else:
                for key in keys:
                    self.invalidate(key.decode())

    async def _ping(self, connection: AbstractConnection) -> None:
        # Copies stop being served once ``staleness`` passes without an answer; the connection is given up at
        # twice that, or after the socket timeout if longer, and a new one is made.
        give_up = max(2 * self.staleness, connection.socket_timeout or 0.0)
        while True:
            now = self.clock()
            if self._pings and now - self._pings[0] > give_up:
                raise ChannelSilent(f"no answer to a ping for {now - self._pings[0]:.2f}s")
            self._pings.append(now)
            await connection.send_command("PING", check_health=False)
            await asyncio.sleep(self.staleness / 2)


async def _command(connection: AbstractConnection, *args: Any) -> Any:
    await connection.send_command(*args, check_health=False)
    return await connection.read_response()
