"""Traces over OTLP/HTTP, configured by the standard ``OTEL_*`` variables, off until a collector is named.

With neither ``OTEL_EXPORTER_OTLP_ENDPOINT`` nor ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, the lifespan opens
nothing here and nothing of the trace SDK, the exporter or the instrumentations is imported: tracing off costs
nothing per request. (FastAPI imports the OpenTelemetry API on its own; it stays idle.)

With one set, the lifespan builds the pipeline (``pipeline.py``: sampler, batch processor, exporter, the
dropped-spans counter) and wires the spans (``spans.py``): a server span per request from the request
middleware's watcher seam, child spans of database statements and of HTTPX calls, the guards' fast failures
and retries as events of the request's span, and ``trace_id``/``span_id`` on every log line written inside a
sampled span. The provider is offered to the parts opened after this one (``Assembly.find(Tracing)``),
which trace their own clients with it. At shutdown the last spans are flushed within ``SHUTDOWN_CLOSE_SECONDS``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator

from ...db import Database
from ...settings import Group, group_config
from .. import Assembly, Feature

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

Sampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


class TracingSettings(Group):
    """The OpenTelemetry specification's names, read here so that a bad value stops the service by name."""

    model_config = group_config("OTEL_")
    exporter_otlp_endpoint: str | None = None
    exporter_otlp_traces_endpoint: str | None = None
    exporter_otlp_protocol: Literal["http/protobuf"] = "http/protobuf"
    # Milliseconds, as the specification says; short, so that a hung collector holds no export (nor the final
    # flush) for long. The SDK's own default is 10 s.
    exporter_otlp_timeout: Annotated[int, Field(gt=0)] = 2000
    service_name: str | None = None
    resource_attributes: str | None = None
    traces_sampler: Sampler = "parentbased_always_on"
    traces_sampler_arg: Annotated[float, Field(ge=0, le=1)] = 1.0

    @field_validator("exporter_otlp_endpoint", "exporter_otlp_traces_endpoint")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("resource_attributes")
    @classmethod
    def _check_attributes(cls, value: str | None) -> str | None:
        for pair in filter(str.strip, (value or "").split(",")):
            key, equals, _ = pair.partition("=")
            if not equals or not key.strip():
                raise ValueError(f"expected key=value[,key=value...], got {pair.strip()!r}")
        return value

    @field_validator("traces_sampler", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def enabled(self) -> bool:
        return self.exporter_otlp_endpoint is not None or self.exporter_otlp_traces_endpoint is not None

    @property
    def traces_url(self) -> str:
        """Where spans are posted: the signal's own endpoint as it is, or ``/v1/traces`` under the common one."""
        if self.exporter_otlp_traces_endpoint is not None:
            return self.exporter_otlp_traces_endpoint
        return f"{(self.exporter_otlp_endpoint or '').rstrip('/')}/v1/traces"

    @property
    def resource(self) -> dict[str, str]:
        pairs = [pair.partition("=") for pair in (self.resource_attributes or "").split(",") if pair.strip()]
        return {key.strip(): value.strip() for key, _, value in pairs}


@dataclass(frozen=True, slots=True)
class Tracing:
    """Traces are on: the parts opened after this one find it (``Assembly.find(Tracing)``) to trace their clients."""

    provider: TracerProvider


@asynccontextmanager
async def lifespan(assembly: Assembly) -> AsyncIterator[None]:
    cfg = assembly.settings.feature(TracingSettings)
    if not cfg.enabled:
        yield
        return
    # Imported only now: a service with tracing off never loads the SDK.
    from . import pipeline, spans

    traces = pipeline.open_pipeline(cfg, assembly.settings.service.name, assembly.metrics)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(pipeline.closing_pipeline(traces, assembly.settings.server.shutdown_close_seconds))
        # The SDK warns once per span its full queue drops, from the request's own thread: the count is the metric.
        batching = logging.getLogger("opentelemetry.sdk._shared_internal")
        stack.callback(batching.setLevel, batching.level)
        batching.setLevel(logging.ERROR)
        watcher = spans.ServerSpans(traces.provider.get_tracer(__name__), traces.keeps_new_trace, traces.ids)
        assembly.hooks.watchers.append(watcher)
        stack.callback(assembly.hooks.watchers.remove, watcher)
        stack.callback(spans.instrument(traces.provider, assembly.get(Database).engine))
        stack.callback(assembly.guards.listen(spans.note_guard_event))
        stack.callback(spans.add_ids_to_log_records())
        assembly.provide(Tracing, Tracing(traces.provider))
        yield


feature = Feature("tracing", settings={"tracing": TracingSettings}, lifespan=lifespan)
