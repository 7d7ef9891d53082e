"""Prometheus metrics of the service, correct under several gunicorn workers.

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker imports prometheus_client, so
every value lands in a per-process file and ``/metrics`` aggregates them; each Gauge says how.
Single-process runs (the dev server, tests) use the app's own registry.

What moves on every request or every dependency call (request count and latency, dependency latency,
cache reads) is counted in process memory first (``Batched*``) and published to prometheus_client by
``Metrics.publish()``: every sampling interval (0.5 s), before each scrape this process answers, and when the
lifespan ends. In multiprocess mode each prometheus_client update is a write to the worker's mmap'ed file
behind a lock and a pid check, about 1.2 us per value and two values per histogram observation; published
in batches, a request's three writes cost one addition each. prometheus_client has no bulk update for a
histogram, so ``BatchedHistogram`` adds into the child's own bucket values (checked when it is created).
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from .resilience import BreakerState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the service defines, registered in one registry per app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # HTTP metrics under prometheus-fastapi-instrumentator's names, so its dashboards work unchanged.
        self.http_requests = Counter(
            "http_requests",
            "HTTP requests by route template, method and status.",
            ["handler", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["handler", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests_in_progress = Gauge(
            "http_requests_inprogress", "HTTP requests being served.", registry=r, multiprocess_mode="livesum"
        )
        self.breaker_state = Gauge(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open, 3 forced open, 4 disabled.",
            ["dependency"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.breaker_transitions = Counter(
            "breaker_transitions", "Breaker state changes.", ["dependency", "from_state", "to_state"], registry=r
        )
        self.dependency_calls = Counter(
            "dependency_calls", "Calls to a dependency by outcome.", ["dependency", "outcome"], registry=r
        )
        self.dependency_latency = Histogram(
            "dependency_latency_seconds",
            "Latency of dependency calls.",
            ["dependency"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter("retries", "Retry decisions by outcome.", ["dependency", "outcome"], registry=r)
        self.bulkhead_rejections = Counter(
            "bulkhead_rejections", "Calls refused because the bulkhead was full.", ["dependency"], registry=r
        )
        self.pool_size = Gauge("db_pool_size", "Connections the pool keeps.", registry=r, multiprocess_mode="livesum")
        self.pool_checked_out = Gauge(
            "db_pool_checked_out", "Connections in use.", registry=r, multiprocess_mode="livesum"
        )
        self.pool_overflow = Gauge(
            "db_pool_overflow", "Connections above the pool size.", registry=r, multiprocess_mode="livesum"
        )
        self.pool_capacity = Gauge(
            "db_pool_capacity",
            "Connections the pool may open: size plus overflow.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_timeouts = Counter("db_pool_timeouts", "Requests that waited too long for a connection.", registry=r)
        self.cache_requests = Counter("cache_requests", "Cache reads by result.", ["result"], registry=r)
        self.cache_write_failures = Counter("cache_write_failures", "Cache writes that failed.", registry=r)
        self.event_loop_lag = Gauge(
            "event_loop_lag_seconds", "How late the event loop ran a timer.", registry=r, multiprocess_mode="livemax"
        )
        self._counters: dict[Counter, BatchedCounter] = {}
        self._histograms: dict[Histogram, BatchedHistogram] = {}

    def batched_counter(self, counter: Counter, *labels: str) -> BatchedCounter:
        """The batch of ``counter`` (with ``labels``): the same one for the same series."""
        child = counter.labels(*labels) if labels else counter
        batch = self._counters.get(child)
        if batch is None:
            batch = self._counters[child] = BatchedCounter(child)
        return batch

    def batched_histogram(self, histogram: Histogram, *labels: str) -> BatchedHistogram:
        """The batch of ``histogram`` (with ``labels``): the same one for the same series."""
        child = histogram.labels(*labels) if labels else histogram
        batch = self._histograms.get(child)
        if batch is None:
            batch = self._histograms[child] = BatchedHistogram(child)
        return batch

    def guard(self, name: str) -> GuardMetrics:
        """The observer of the guard of dependency ``name``: its calls, refusals, retries and breaker."""
        return GuardMetrics(self, name)

    def publish(self) -> None:
        """Hand every batched count and observation to prometheus_client."""
        for counter in self._counters.values():
            counter.publish()
        for histogram in self._histograms.values():
            histogram.publish()

    async def sample_forever(self, samplers: Sequence[Callable[[Metrics], None]], interval: float = 0.5) -> None:
        """Every ``interval``: record how late the timer fired (a blocked loop shows here first), run samplers,
        publish the batches; publish once more when cancelled, at shutdown."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                expected = loop.time() + interval
                await asyncio.sleep(interval)
                self.event_loop_lag.set(max(0.0, loop.time() - expected))
                for sample in samplers:
                    sample(self)
                self.publish()
        finally:
            self.publish()

    def exposition(self) -> bytes:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    async def endpoint(self, request: Request) -> Response:
        self.publish()
        # Reading every worker's files is blocking I/O: keep it off the event loop.
        return Response(await asyncio.to_thread(self.exposition), media_type=CONTENT_TYPE_LATEST)


class BatchedCounter:
    """A counter child's increments, kept until ``publish()``."""

    __slots__ = ("_child", "_pending")

    def __init__(self, child: Counter) -> None:
        self._child = child
        self._pending = 0

    def inc(self) -> None:
        self._pending += 1

    def publish(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, 0
            self._child.inc(pending)


class BatchedHistogram:
    """A histogram child's observations, as bucket counts and a sum, kept until ``publish()``."""

    __slots__ = ("_bounds", "_buckets", "_counts", "_pending", "_sum", "_total")

    def __init__(self, child: Histogram) -> None:
        # The child's own values: prometheus_client keeps one per bucket (not cumulative) and one for the sum.
        self._bounds: list[float] = child._upper_bounds
        self._buckets = child._buckets
        self._sum = child._sum
        if len(self._buckets) != len(self._bounds):
            raise TypeError("this prometheus_client keeps histogram buckets another way: update BatchedHistogram")
        self._counts = [0] * len(self._bounds)
        self._total = 0.0
        self._pending = False

    def observe(self, value: float) -> None:
        # Prometheus buckets are upper-inclusive: the first bound >= value, as Histogram.observe finds it.
        self._counts[bisect_left(self._bounds, value)] += 1
        self._total += value
        self._pending = True

    def publish(self) -> None:
        if not self._pending:
            return
        counts, self._counts = self._counts, [0] * len(self._bounds)
        total, self._total, self._pending = self._total, 0.0, False
        for bucket, count in zip(self._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        self._sum.inc(total)


class GuardMetrics:
    """A guard's observer (``resilience.GuardObserver``): its series, looked up once."""

    def __init__(self, metrics: Metrics, name: str) -> None:
        self._latency = metrics.batched_histogram(metrics.dependency_latency, name)
        self._failures = metrics.dependency_calls.labels(name, "failure")
        self._refusals = {
            "rejected": metrics.dependency_calls.labels(name, "rejected"),
            "bulkhead_full": metrics.bulkhead_rejections.labels(name),
        }
        outcomes = ("attempted", "budget_exhausted", "gave_up")
        self._retries = {outcome: metrics.retries.labels(name, outcome) for outcome in outcomes}
        self._state = metrics.breaker_state.labels(name)
        self._transitions = metrics.breaker_transitions
        self._name = name

    def called(self, elapsed: float, failed: bool) -> None:
        self._latency.observe(elapsed)
        if failed:
            self._failures.inc()

    def refused(self, reason: str) -> None:
        self._refusals[reason].inc()

    def retried(self, outcome: str) -> None:
        self._retries[outcome].inc()

    def transition(self, old: BreakerState, new: BreakerState) -> None:
        self._state.set(new)
        if old is not new:
            self._transitions.labels(self._name, old.name.lower(), new.name.lower()).inc()
