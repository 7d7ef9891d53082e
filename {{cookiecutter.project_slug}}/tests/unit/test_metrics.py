"""Counts and observations batched in process memory reach prometheus_client as if recorded one by one."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as instrumentator_metrics

from {{ cookiecutter.package_name }} import migrations, probes
from {{ cookiecutter.package_name }}.metrics import LATENCY_BUCKETS, Metrics
from tests.conftest import MANAGEMENT, SettingsFactory, serve
from tests.routes import create_test_app

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


async def test_http_metrics_match_prometheus_fastapi_instrumentator(make_settings: SettingsFactory) -> None:
    """The HTTP metrics the service records itself are the instrumentator's, configured as the service reports:
    exact status codes, route templates (untemplated paths as "none"), latency by handler and method in the same
    buckets, probes and the management port left out. Both run on one app for the same requests; every family,
    label name, label value, count and bucket bound agrees."""
    settings = make_settings()
    app = create_test_app(settings)
    theirs = CollectorRegistry()
    Instrumentator(
        should_group_status_codes=False,
        excluded_handlers=["/metrics", *(f"^{path}$" for path in probes.probe_paths(settings.health))],
        should_instrument_requests_inprogress=True,
        registry=theirs,
    ).add(
        instrumentator_metrics.requests(registry=theirs),
        instrumentator_metrics.latency(should_include_status=False, buckets=LATENCY_BUCKETS, registry=theirs),
    ).instrument(app)
    await migrations.upgrade(settings.db)
    async with serve(app) as client:
        for method, path, body in [
            ("PUT", "/test/cache/a", b"v"), ("GET", "/test/cache/a", None), ("GET", "/test/cache/a", None),
            ("GET", "/test/cache/missing", None), ("GET", "/nowhere", None), ("GET", "/test/sleep?seconds=x", None),
            ("POST", "/test/echo", b"[]"), ("GET", "/test/query", None), ("DELETE", "/test/query", None),
            ("GET", "/health/live", None),
        ]:  # fmt: skip
            await client.request(method, path, content=body)
        ours = (await client.get(f"{MANAGEMENT}/metrics")).text

    def families(exposition: str) -> dict[str, dict[tuple[tuple[str, str], ...], float | None]]:
        """Every HTTP sample by name and labels, with its value where both sides must agree on it: each side
        times a request itself, so a duration's sum and the bucket it falls in may differ, never its count."""
        found: dict[str, dict[tuple[tuple[str, str], ...], float | None]] = {}
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples if family.name.startswith("http_") else ():
                timed = sample.name.endswith("_sum") or sample.labels.get("le", "+Inf") != "+Inf"
                if not sample.name.endswith("_created"):
                    labels = tuple(sorted(sample.labels.items()))
                    found.setdefault(sample.name, {})[labels] = None if timed else sample.value
        return found

    # The instrumentator registers its in-progress gauge in the default registry, whatever registry it is given.
    theirs_families = families(generate_latest(theirs).decode() + generate_latest(REGISTRY).decode())
    assert families(ours) == theirs_families
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "http_requests_inprogress"} <= set(
        theirs_families
    )
