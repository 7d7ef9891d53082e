"""The way out for spans: sampler, batch processor, OTLP/HTTP exporter, and the count of what never got out.

Spans leave in batches from the processor's own thread, so a slow, hung or absent collector never touches a
request: a failed export drops its batch (the exporter's timeout is ``OTEL_EXPORTER_OTLP_TIMEOUT``, 2 s by
default, not the SDK's 10 s), and while exports hang the bounded queue drops its oldest spans. Either way the
spans are counted in ``traces_spans_dropped_total{reason}``.

At shutdown the provider flushes what is queued in a thread of its own, waited for within the lifespan's close
budget (``SHUTDOWN_CLOSE_SECONDS``); past it the thread is left behind (a daemon: it holds no exit) and the
spans still queued are counted as ``reason="shutdown"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from prometheus_client import Counter

from ...shutdown import closing

if TYPE_CHECKING:
    from ...metrics import Metrics
    from . import TracingSettings


@dataclass(frozen=True, slots=True)
class Traces:
    provider: TracerProvider
    processor: CountingBatchProcessor
    ids: RequestIds
    keeps_new_trace: Callable[[int], bool]


class RequestIds(RandomIdGenerator):
    """The SDK's random ids, except that a request's watcher may draw a new trace's id before its span exists.

    The watcher asks the sampler itself, so that a request it drops costs no SDK span at all; the span of a
    request it keeps must then carry the very id the sampler judged, which ``hand_over`` passes to the SDK.
    """

    def __init__(self) -> None:
        self._next = threading.local()

    def draw(self) -> int:
        return super().generate_trace_id()

    def hand_over(self, trace_id: int) -> None:
        self._next.trace_id = trace_id

    def generate_trace_id(self) -> int:
        trace_id: int | None = getattr(self._next, "trace_id", None)
        if trace_id is None:
            return super().generate_trace_id()
        self._next.trace_id = None
        return trace_id


def open_pipeline(cfg: TracingSettings, default_name: str, metrics: Metrics) -> Traces:
    dropped = Counter(
        "traces_spans_dropped",
        "Finished spans that never reached the collector: export_failed, queue_full or shutdown.",
        ["reason"],
        registry=metrics.registry,
    )
    for reason in ("export_failed", "queue_full", "shutdown"):
        dropped.labels(reason)  # every series from the start, at 0: rate() and alerts see the first drop
    name = cfg.service_name or cfg.resource.get("service.name") or default_name
    ids = RequestIds()
    provider = TracerProvider(
        sampler=sampler(cfg.traces_sampler, cfg.traces_sampler_arg),
        id_generator=ids,
        resource=Resource.create({**cfg.resource, "service.name": name}),
        shutdown_on_exit=False,  # the lifespan shuts it down, within its budget; an atexit hook has none
    )
    exporter = OTLPSpanExporter(endpoint=cfg.traces_url, timeout=cfg.exporter_otlp_timeout / 1000)
    processor = CountingBatchProcessor(CountingExporter(exporter, dropped.labels("export_failed")), dropped)
    provider.add_span_processor(processor)
    return Traces(provider, processor, ids, keeps_new_trace(cfg.traces_sampler, cfg.traces_sampler_arg))


def sampler(name: str, ratio: float) -> Sampler:
    """``OTEL_TRACES_SAMPLER``'s sampler, whose new traces start only at a request's span."""
    root: Sampler = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF}.get(
        name.removeprefix("parentbased_"), TraceIdRatioBased(ratio)
    )
    root = RequestsOnly(root)
    return ParentBased(root) if name.startswith("parentbased_") else root


def keeps_new_trace(name: str, ratio: float) -> Callable[[int], bool]:
    """The sampler's decision for a request's span that starts a trace, by its trace id: the SDK's own rules
    (``TraceIdRatioBased`` keeps an id whose low 64 bits are under the ratio's bound), without its calls."""
    kind = name.removeprefix("parentbased_")
    if kind in ("always_on", "always_off"):
        return lambda _trace_id: kind == "always_on"
    bound, low_bits = TraceIdRatioBased.get_bound_for_rate(ratio), TraceIdRatioBased.TRACE_ID_LIMIT
    return lambda trace_id: trace_id & low_bits < bound


class RequestsOnly(Sampler):
    """No trace starts outside a request: a client's call with no span above it (a health check's, a background
    task's) would otherwise be a trace of its own, several per probe."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is not SpanKind.SERVER and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"RequestsOnly({self.delegate.get_description()})"


class CountingExporter(SpanExporter):
    """The exporter, counting the spans of every batch it could not deliver."""

    def __init__(self, exporter: SpanExporter, failed: Counter) -> None:
        self.exporter = exporter
        self.failed = failed

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.exporter.export(spans)
        except Exception:  # the exporter's own errors are a failed export too, never the processor's end
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.failed.inc(len(spans))
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class CountingBatchProcessor(BatchSpanProcessor):
    """The SDK's batch processor (``OTEL_BSP_*``), counting the spans its full queue drops.

    The queue is a bounded deque: a span added to a full one pushes the oldest out, without a word. The SDK
    exposes no count of those, so this reads the deque's length, as the SDK itself does to wake its worker.
    """

    def __init__(self, exporter: SpanExporter, dropped: Counter) -> None:
        super().__init__(exporter)
        self.queue = self._batch_processor._queue
        self.queue_full = dropped.labels("queue_full")
        self.left_at_shutdown = dropped.labels("shutdown")

    def on_end(self, span: ReadableSpan) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.queue_full.inc()
        super().on_end(span)


def closing_pipeline(traces: Traces, budget: float) -> Callable[[], Awaitable[None]]:
    """The lifespan's close step: flush and shut down off the event loop, within ``budget`` seconds."""

    async def shut_down() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def run() -> None:
            try:
                traces.provider.shutdown()  # blocking: the processor's last exports, then the exporter's close
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                    loop.call_soon_threadsafe(finished)

        threading.Thread(target=run, name="tracing-shutdown", daemon=True).start()
        try:
            async with asyncio.timeout(0.9 * budget):  # inside the close step's own timeout, so that this counts
                await done
        except TimeoutError:
            traces.processor.left_at_shutdown.inc(len(traces.processor.queue))
            raise

    return closing("tracing", shut_down, budget)
