"""Counts and observations batched in process memory reach prometheus_client as if recorded one by one."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest

from {{ cookiecutter.package_name }}.metrics import LATENCY_BUCKETS, Metrics

# Both sides of every bucket bound, zero, and values past the last bound.
OBSERVATIONS = [0.0, 0.004, *LATENCY_BUCKETS, *(bound * 1.01 for bound in LATENCY_BUCKETS), 60.0]


def exposition(metrics: Metrics) -> list[str]:
    lines = generate_latest(metrics.registry).decode().splitlines()
    return [line for line in lines if not line.startswith("#") and "_created" not in line]


def test_a_published_batch_equals_the_same_values_recorded_directly() -> None:
    """Bucket counts, sum and count of a batched histogram, and a batched counter, match direct recording."""
    direct, batched = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    histogram = batched.batched_histogram(batched.http_latency, "/test/query", "GET")
    counter = batched.batched_counter(batched.http_requests, "/test/query", "GET", "200")
    for value in OBSERVATIONS:
        direct.http_latency.labels("/test/query", "GET").observe(value)
        direct.http_requests.labels("/test/query", "GET", "200").inc()
        histogram.observe(value)
        counter.inc()
    batched.publish()
    assert exposition(batched) == exposition(direct)
    batched.publish()  # nothing new: nothing added twice
    assert exposition(batched) == exposition(direct)


def test_one_series_has_one_batch() -> None:
    """Asking twice for the same series gives the same batch, so nothing is published twice."""
    metrics = Metrics(CollectorRegistry())
    assert metrics.batched_counter(metrics.cache_requests, "hit") is metrics.batched_counter(
        metrics.cache_requests, "hit"
    )
    assert metrics.batched_histogram(metrics.dependency_latency, "database") is metrics.batched_histogram(
        metrics.dependency_latency, "database"
    )


async def test_the_sampler_publishes_every_interval_and_when_it_stops() -> None:
    """Batches reach the registry within one sampling interval, and the last ones when the sampler is cancelled."""
    metrics = Metrics(CollectorRegistry())
    hits = metrics.batched_counter(metrics.cache_requests, "hit")

    def published() -> float | None:
        return metrics.registry.get_sample_value("cache_requests_total", {"result": "hit"})

    sampler = asyncio.create_task(metrics.sample_forever([], interval=0.05))
    hits.inc()
    assert published() == 0.0, "published before its time: the batch is not a batch"
    await asyncio.sleep(0.2)
    assert published() == 1.0
    hits.inc()
    sampler.cancel()
    await asyncio.gather(sampler, return_exceptions=True)
    assert published() == 2.0
