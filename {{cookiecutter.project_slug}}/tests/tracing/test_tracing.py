"""Traces of real requests, received by a real OTLP/HTTP receiver; tracing off costs no import."""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind

from {{ cookiecutter.package_name }} import features
from {{ cookiecutter.package_name }}.features.tracing.pipeline import keeps_new_trace, sampler
from {{ cookiecutter.package_name }}.settings import Settings
from tests.conftest import MANAGEMENT, SettingsFactory, refusal, serve
from tests.tracing.conftest import create_traced_app
from tests.tracing.receiver import ReceivedSpan, Receiver, closed_port, hung_collector

PROJECT = Path(__file__).resolve().parents[2]
CALLER_TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
# Not opentelemetry.sdk as a whole: a client library may import the metrics SDK by itself whenever it is installed.
SDK = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.instrumentation", "opentelemetry.proto")
IMPORTED = """
import asyncio, sys
import httpx
from asgi_lifespan import LifespanManager
from {{ cookiecutter.package_name }} import features
from tests.routes import create_test_app

async def main() -> None:
    app = create_test_app(features.load_settings())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.post("/test/echo", json={"a": 1})).status_code == 200

asyncio.run(main())
print(sorted(name for name in sys.modules if name.startswith(SDK_PREFIXES)))
"""


def sdk_modules(tmp_path: Path, **env: str) -> list[str]:
    """The modules of the trace SDK, the exporter, the instrumentations and the protocol that a fresh process loaded
    serving a request."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in features.variables()}
    environment |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "LOG_LEVEL": "WARNING", **env}
    script = IMPORTED.replace("SDK_PREFIXES", repr(SDK))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, env=environment, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))
    return loaded


def test_tracing_off_imports_nothing_of_the_sdk(tmp_path: Path) -> None:
    """With no endpoint, serving a request loads no module of the trace SDK, its exporter or its instrumentations."""
    assert sdk_modules(tmp_path) == []
    on = sdk_modules(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=closed_port())
    print(f"\n[figure] tracing off: 0 SDK modules loaded; on: {len(on)}")
    assert "opentelemetry.sdk.trace" in on  # the same check sees them when tracing is on


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def show(spans: list[ReceivedSpan]) -> str:
    return "; ".join(f"{s.name} [{s.kind}] {s.span_id} <- {s.parent_id or '-'}" for s in spans)


async def test_a_request_is_one_trace_under_the_callers_span(
    traced_settings: Settings, receiver: Receiver, captured_logs: object
) -> None:
    """A request with a traceparent is a server span under the caller's, its statement a child; its log lines
    and its access line carry the trace and span ids."""
    async with serve(create_traced_app(traced_settings)) as client:
        response = await client.get("/traced/log", headers={"traceparent": TRACEPARENT, "x-request-id": "req-1"})
    assert response.status_code == 200
    spans = receiver.wait_for(lambda got: any(s.kind == "SERVER" for s in got))
    print(f"\n[figure] received: {show(spans)}")
    server = by_name(spans, "GET /traced/log")
    assert (server.kind, server.trace_id, server.parent_id) == ("SERVER", CALLER_TRACE, CALLER_SPAN)
    assert server.service == traced_settings.service.name
    assert server.attributes["http.route"] == "/traced/log"
    assert server.attributes["http.response.status_code"] == 200
    statements = [s for s in spans if s.kind == "CLIENT"]
    assert statements and all(s.parent_id == server.span_id for s in statements), show(spans)
    assert {s.trace_id for s in spans} == {CALLER_TRACE}, "a span outside the request's trace"
    lines = [json.loads(line) for line in captured_logs()]  # type: ignore[operator]
    ours = [line for line in lines if line.get("request_id") == "req-1"]
    print(f"[figure] log lines of the request: {ours}")
    assert {line["message"] for line in ours} >= {"inside the request", "request"}
    for line in ours:
        assert (line["trace_id"], line["span_id"]) == (CALLER_TRACE, server.span_id), line


async def test_retries_and_fast_failures_are_events_of_the_request_span(
    traced_settings: Settings, receiver: Receiver
) -> None:
    """A retried call and a call the open breaker refused appear as events on their request's span."""
    async with serve(create_traced_app(traced_settings)) as client:
        assert (await client.get("/traced/flaky")).json() == {"attempts": 2}
        assert (await client.get("/traced/refused")).status_code == 503
    spans = receiver.wait_for(lambda got: sum(s.kind == "SERVER" for s in got) == 2)
    retried, refused = by_name(spans, "GET /traced/flaky"), by_name(spans, "GET /traced/refused")
    print(f"\n[figure] events: {retried.events}, {refused.events}")
    assert retried.events["retry"]["dependency"] == "database"
    assert retried.events["retry"]["attempt"] == 2
    assert retried.events["retry"]["error"] == "ConnectionResetError"
    assert refused.events["breaker_open"]["dependency"] == "database"


async def test_outgoing_calls_are_child_spans_and_carry_the_trace(
    traced_settings: Settings, receiver: Receiver
) -> None:
    """An HTTPX call made in a request is a client span under it, and the upstream receives its traceparent."""
    async with serve(create_traced_app(traced_settings)) as client:
        url = f"{receiver.url}/anything"
        response = await client.get("/traced/upstream", params={"url": url}, headers={"traceparent": TRACEPARENT})
    assert response.json() == {"status": 200}
    spans = receiver.wait_for(lambda got: any(s.kind == "SERVER" for s in got))
    server = by_name(spans, "GET /traced/upstream")
    (call,) = [s for s in spans if s.kind == "CLIENT"]
    (headers,) = receiver.upstream_headers
    print(f"\n[figure] received: {show(spans)}; upstream got traceparent {headers['traceparent']}")
    assert (call.trace_id, call.parent_id) == (CALLER_TRACE, server.span_id)
    assert headers["traceparent"] == f"00-{CALLER_TRACE}-{call.span_id}-01"


async def timed_requests(
    settings: Settings, count: int = 300, warmup: int = 30
) -> tuple[list[int], list[float], str, float]:
    """Statuses and seconds of ``count`` requests after ``warmup`` more, the /metrics text after them, and the
    seconds the lifespan took to close."""
    statuses, seconds = [], []
    async with serve(create_traced_app(settings)) as client:
        for n in range(warmup + count):
            started = time.perf_counter()
            response = await client.get("/traced/log")
            if n >= warmup:
                seconds.append(time.perf_counter() - started)
                statuses.append(response.status_code)
        await asyncio.sleep(0.5)  # the exports under way fail meanwhile, and count their spans
        metrics = (await client.get(f"{MANAGEMENT}/metrics")).text
        closing = time.perf_counter()
    return statuses, seconds, metrics, time.perf_counter() - closing


def dropped(metrics: str, reason: str) -> float:
    for line in metrics.splitlines():
        if line.startswith('traces_spans_dropped_total{reason="' + reason + '"}'):
            return float(line.split()[-1])
    raise AssertionError(f"no traces_spans_dropped_total for {reason}")


@pytest.mark.parametrize("collector", ["down", "hung"])
async def test_a_collector_down_or_hung_changes_no_response(
    collector: str, services_settings: Settings, make_settings: SettingsFactory, receiver: Receiver
) -> None:
    """With the collector refusing connections or never answering, every request answers as with a healthy one and
    as fast; the lost spans are counted, and shutdown stays within its budget."""
    database = services_settings.db.url.get_secret_value()
    tracing = {
        "OTEL_EXPORTER_OTLP_TIMEOUT": "300",
        "SHUTDOWN_CLOSE_SECONDS": "2",
        # A batch every 64 requests (two spans each); while one hangs, the queue fills and drops.
        "OTEL_BSP_MAX_QUEUE_SIZE": "256",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "128",
    }
    off = await timed_requests(make_settings(DATABASE_URL=database))
    healthy = await timed_requests(
        make_settings(DATABASE_URL=database, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, **tracing)
    )
    with hung_collector() as hung:
        endpoint = hung if collector == "hung" else closed_port()
        failing = await timed_requests(
            make_settings(DATABASE_URL=database, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **tracing)
        )
    p50 = {name: statistics.median(run[1]) * 1000 for name, run in (("off", off), ("up", healthy), ("on", failing))}
    p99 = {
        name: statistics.quantiles(run[1], n=100)[98] * 1000
        for name, run in (("off", off), ("up", healthy), ("on", failing))
    }
    metrics, close_s = failing[2], failing[3]
    failed, full = dropped(metrics, "export_failed"), dropped(metrics, "queue_full")
    on, up, off_ = (f"{p50[name]:.2f}/{p99[name]:.2f} ms" for name in ("on", "up", "off"))
    print(
        f"\n[figure] collector {collector}: p50/p99 {on} (healthy collector {up}, tracing off {off_}); "
        f"dropped: export_failed {failed:.0f}, queue_full {full:.0f}; lifespan closed in {close_s:.2f} s"
    )
    assert failing[0] == healthy[0] == off[0] == [200] * len(off[0])
    assert p50["on"] < 1.5 * p50["up"] + 0.5
    assert failed + full > 0
    assert close_s < 2.0
    assert dropped(healthy[2], "export_failed") == dropped(healthy[2], "queue_full") == 0


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT", id="endpoint"),
        pytest.param({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER", id="sampler"),
        pytest.param({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG", id="ratio"),
        pytest.param({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL", id="protocol"),
        pytest.param({"OTEL_RESOURCE_ATTRIBUTES": "team"}, "OTEL_RESOURCE_ATTRIBUTES", id="attributes"),
    ],
)
def test_a_bad_tracing_setting_names_its_variable(
    make_settings: SettingsFactory, env: dict[str, str], variable: str
) -> None:
    """A tracing variable the service cannot use stops it with one line naming the variable."""
    assert refusal(make_settings, **env).startswith(f"{variable}: ")


@pytest.mark.parametrize(
    ("name", "ratio"),
    [("parentbased_traceidratio", 0.25), ("traceidratio", 0.5), ("parentbased_always_on", 1.0), ("always_off", 1.0)],
)
def test_a_new_trace_is_judged_by_the_samplers_own_rule(name: str, ratio: float) -> None:
    """The request watcher's early decision on a new trace is the SDK sampler's, id for id."""
    keeps, sdk = keeps_new_trace(name, ratio), sampler(name, ratio)
    draw = random.Random(7)
    decisions = []
    for _ in range(2000):
        trace_id = draw.getrandbits(128)
        kept = sdk.should_sample(None, trace_id, "GET", SpanKind.SERVER).decision is Decision.RECORD_AND_SAMPLE
        assert keeps(trace_id) == kept, hex(trace_id)
        decisions.append(kept)
    print(f"\n[figure] {name} {ratio}: {sum(decisions)} of {len(decisions)} new traces kept")
