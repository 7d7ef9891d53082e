"""Redis behind the cache: settings, the client, its guard, its near cache and its health check.

The lifespan opens the client when ``REDIS_URL`` or ``REDIS_SENTINELS`` is set and closes it on shutdown;
without either, the in-process cache is the only cache. Every call goes through the ``redis`` guard
(breaker, bulkhead) and is bounded by ``REDIS_CALL_TIMEOUT_SECONDS``, pool wait and reconnect included:
a cache that hangs costs a read that much at most, and the cache facade turns its failures into a fallback,
never into an error. Values read lately are served from the near cache (``near.py``) without a round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Self, TypeVar, cast

import redis.exceptions
from pydantic import Field, SecretStr, field_validator, model_validator
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff

from ...cache import CacheUnavailable, LocalCache, RemoteCache
from ...checks import Check, Result
from ...resilience import BreakerOpen, BulkheadFull, DependencyUnavailable, Guard
from ...settings import Group, PositiveInt, ResilienceSettings, Seconds, env_alias, group_config
from ...shutdown import closing
from .. import Assembly, Feature
from .near import NearCache

T = TypeVar("T")
_UNAVAILABLE = (DependencyUnavailable, BreakerOpen, BulkheadFull, redis.exceptions.RedisError)


class RedisSettings(Group):
    model_config = group_config("REDIS_")
    url: SecretStr | None = Field(None, validation_alias=env_alias("REDIS_URL"))
    sentinels: str | None = None
    sentinel_master: str | None = None
    max_connections: PositiveInt = 20
    call_timeout_seconds: Seconds = 0.1
    pool_timeout_seconds: Seconds = 0.1
    socket_timeout_seconds: Seconds = 0.5
    connect_timeout_seconds: Seconds = 0.5
    health_check_interval_seconds: Annotated[int, Field(ge=0)] = 30
    near_cache: bool = True
    near_cache_staleness_seconds: Seconds = 0.5
    critical: bool = Field(False, validation_alias=env_alias("HEALTH_REDIS_CRITICAL"))

    @field_validator("url")
    @classmethod
    def _check_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://")):
            raise ValueError("expected redis:// or rediss://")
        return value

    @field_validator("sentinels")
    @classmethod
    def _check_sentinels(cls, value: str | None) -> str | None:
        if value is not None:
            for node in value.split(","):
                host, _, port = node.strip().rpartition(":")
                if not host or not port.isdigit():
                    raise ValueError(f"expected host:port[,host:port...], got {node.strip()!r}")
        return value

    @model_validator(mode="after")
    def _sentinel_needs_master(self) -> Self:
        if self.sentinels and not self.sentinel_master:
            raise ValueError("REDIS_SENTINEL_MASTER is required with REDIS_SENTINELS")
        return self

    @property
    def enabled(self) -> bool:
        return self.url is not None or self.sentinels is not None

    @property
    def sentinel_nodes(self) -> list[tuple[str, int]]:
        nodes = [node.strip().rpartition(":") for node in (self.sentinels or "").split(",") if node.strip()]
        return [(host, int(port)) for host, _, port in nodes]


class RedisResilienceSettings(ResilienceSettings):
    model_config = group_config("REDIS_")
    bulkhead_limit: PositiveInt = 100
    breaker_minimum_calls: PositiveInt = 5  # a hung cache is given up after a handful of reads, not twenty


def create_client(cfg: RedisSettings) -> Redis:
    """A client with an explicit pool, timeouts and one quick reconnect."""
    options: dict[str, Any] = {
        "socket_timeout": cfg.socket_timeout_seconds,
        "socket_connect_timeout": cfg.connect_timeout_seconds,
        "health_check_interval": cfg.health_check_interval_seconds,
        # One reconnect replaces a connection that died with a Redis restart; a timeout is not tried again,
        # and more is the breaker's job.
        "retry": Retry(
            ExponentialWithJitterBackoff(base=0.01, cap=0.05),
            retries=1,
            supported_errors=(redis.exceptions.ConnectionError,),
        ),
    }
    if cfg.sentinels:
        sentinel = Sentinel(cfg.sentinel_nodes, sentinel_kwargs={"socket_timeout": cfg.socket_timeout_seconds})  # type: ignore[no-untyped-call]
        master: Redis = sentinel.master_for(cfg.sentinel_master or "", max_connections=cfg.max_connections, **options)
        return master
    assert cfg.url is not None  # noqa: S101 - enabled implies one of the two
    pool = BlockingConnectionPool.from_url(
        cfg.url.get_secret_value(), max_connections=cfg.max_connections, timeout=cfg.pool_timeout_seconds, **options
    )
    return Redis.from_pool(pool)


class RedisErrors:
    """The Redis guard's classifier: its connection errors, and its timeouts (the call timeout's too)."""

    FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, TimeoutError)

    def is_failure(self, exc: BaseException) -> bool:
        return isinstance(exc, self.FAILURES)

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, redis.exceptions.ConnectionError) and not isinstance(exc, redis.exceptions.TimeoutError)


class RedisCache(RemoteCache):
    """The shared cache on Redis, every call under the ``redis`` guard and within the call timeout."""

    name = "redis"

    def __init__(self, client: Redis, guard: Guard, call_timeout_seconds: float, near: NearCache | None) -> None:
        self.client = client
        self.guard = guard
        self.call_timeout = call_timeout_seconds
        self.near = near

    async def get(self, key: str) -> bytes | None:
        near = self.near
        if near is None:
            return await self._call(self._get, key)
        value = near.get(key)
        if value is not None:
            return value
        generation, value = near.begin(key), None
        try:
            value = await self._call(self._get, key)
        finally:
            near.end(key, generation, value)
        return value

    async def _get(self, key: str) -> bytes | None:
        return cast(bytes | None, await self.client.get(key))  # a client without decode_responses returns bytes

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        try:
            await self._call(self.client.set, key, value, ttl_seconds)
        finally:
            if self.near is not None:  # this worker reads its own write at once, not after Redis's message
                self.near.invalidate(key)

    async def delete(self, key: str) -> None:
        try:
            await self._call(self.client.delete, key)
        finally:
            if self.near is not None:
                self.near.invalidate(key)

    async def _call(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            return await self.guard.call(self._within_timeout, operation, *args)
        except _UNAVAILABLE as exc:
            raise CacheUnavailable(type(exc).__name__) from exc

    async def _within_timeout(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        # Inside the guard, so that a timeout counts against the breaker.
        async with asyncio.timeout(self.call_timeout):
            return await operation(*args)


def ping_check(client: Redis, *, critical: bool) -> Check:
    async def run() -> Result:
        started = time.perf_counter()
        await client.ping()
        return Result("pass", round((time.perf_counter() - started) * 1000, 2), "ms")

    return Check("redis:responseTime", "datastore", critical, run)


@asynccontextmanager
async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
    cfg = assembly.settings.feature(RedisSettings)
    if not cfg.enabled:
        yield
        return
    client = create_client(cfg)
    try:
        guard = Guard(
            "redis",
            assembly.settings.feature(RedisResilienceSettings),
            RedisErrors(),
            assembly.metrics.guard("redis"),
            call_timeout_seconds=cfg.call_timeout_seconds,
            critical=cfg.critical,
        )
        assembly.guards.add(guard)
        assembly.checks.add(ping_check(client, critical=cfg.critical))
        near = None
        if cfg.near_cache:
            cache = assembly.settings.cache
            values = LocalCache(cache.local_max_items, cache.local_ttl_seconds)
            near = NearCache(client.connection_pool, values, cfg.near_cache_staleness_seconds)
            near.start()
        assembly.provide(Redis, client)  # for the parts that use Redis beyond the cache
        assembly.provide(RemoteCache, RedisCache(client, guard, cfg.call_timeout_seconds, near))
        try:
            yield
        finally:
            if near is not None:
                await near.close()
    finally:
        await closing("redis", client.aclose, assembly.settings.server.shutdown_close_seconds)()


feature = Feature(
    "redis",
    settings={"redis": RedisSettings, "redis_resilience": RedisResilienceSettings},
    lifespan=lifespan,
)
