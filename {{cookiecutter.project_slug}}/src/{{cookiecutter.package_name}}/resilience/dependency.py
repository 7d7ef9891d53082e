"""One dependency's guard: retry( breaker( bulkhead( operation ))), with its metrics.

The happy path stays cheap (a few microseconds): the first attempt runs outside tenacity, which takes
over only after a transient failure, and per-call timeouts are the drivers' own (statement_timeout,
socket timeouts) under the request's single deadline rather than a fresh timer around every call.

A guard's decisions off the happy path (a call refused by the open breaker or the full bulkhead, a retry, a
retry the budget refused) are told, as they happen and in the caller's context, to whoever ``listen``s: an
optional part can then note them on the request that met them. Nothing listening costs one test, off the
happy path only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from tenacity import RetryCallState

from ..metrics import Metrics
from ..settings import ResilienceSettings
from . import deadline
from .breaker import Breaker, BreakerConfig, BreakerOpen, BreakerState
from .bulkhead import Bulkhead, BulkheadFull
from .errors import is_failure, is_local_wait, is_transient
from .retry import RetryBudget, retrying

T = TypeVar("T")
# (dependency, event, attributes); run on the caller's path, so quick and never raising.
Listener = Callable[[str, str, Mapping[str, object]], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Tell ``listener`` every guard's events: breaker_open, bulkhead_full, retry, retry_budget_exhausted.

    Returns the function that stops it; the part that listens calls it when the lifespan closes.
    """
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def _tell(dependency: str, event: str, attributes: Mapping[str, object]) -> None:
    for listener in _listeners:
        listener(dependency, event, attributes)


class Dependency:
    def __init__(
        self,
        name: str,
        cfg: ResilienceSettings,
        metrics: Metrics,
        *,
        call_timeout_seconds: float,
        critical: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.critical = critical  # an open breaker fails the detailed health report rather than warning
        self.clock = clock
        self.sleep = sleep
        self.breaker = Breaker(name, breaker_config(cfg, call_timeout_seconds), clock=clock)
        self.bulkhead = Bulkhead(name, cfg.bulkhead_limit, cfg.bulkhead_wait_seconds)
        self.budget = RetryBudget(cfg.retry_budget_ratio, cfg.retry_budget_floor, clock=clock)
        self._latency = metrics.batched_histogram(metrics.dependency_latency, name)
        self._failures = metrics.dependency_calls.labels(name, "failure")
        self._rejected = metrics.dependency_calls.labels(name, "rejected")
        self._bulkhead_rejections = metrics.bulkhead_rejections.labels(name)
        self._retried = metrics.retries.labels(name, "attempted")
        self._budget_exhausted = metrics.retries.labels(name, "budget_exhausted")
        self._gave_up = metrics.retries.labels(name, "gave_up")
        self._metrics = metrics
        metrics.breaker_state.labels(name).set(BreakerState.CLOSED)
        self.breaker.listeners.append(self._on_transition)

    async def call(self, operation: Callable[..., Awaitable[T]], *args: Any, idempotent: bool = False) -> T:
        """Run ``operation(*args)`` under the guard; only ``idempotent`` work is retried."""
        self.budget.on_call()
        try:
            return await self._once(operation, args)
        except Exception as exc:
            if not idempotent or not is_transient(exc):
                raise
            return await self._retry(operation, args, exc)

    async def _once(self, operation: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        deadline.check()
        try:
            self.breaker.before_call()
        except BreakerOpen as exc:
            self._rejected.inc()
            if _listeners:
                _tell(self.name, "breaker_open", {"retry_after_seconds": round(exc.retry_after, 3)})
            raise
        if not self.bulkhead.try_acquire():
            try:
                await self.bulkhead.acquire()
            except BulkheadFull:
                self.breaker.on_ignored()
                self._bulkhead_rejections.inc()
                if _listeners:
                    _tell(self.name, "bulkhead_full", {"limit": self.cfg.bulkhead_limit})
                raise
        started = self.clock()
        try:
            result = await operation(*args)
        except BaseException as exc:
            elapsed = self.clock() - started
            if isinstance(exc, Exception) and is_failure(exc):
                # The pool's own timeout is this process queueing, not the dependency failing (errors.py).
                if is_local_wait(exc):
                    self.breaker.on_ignored()
                else:
                    self.breaker.on_failure(elapsed)
                self._failures.inc()
                self._latency.observe(elapsed)
            else:
                self.breaker.on_ignored()
            raise
        finally:
            self.bulkhead.release()
        elapsed = self.clock() - started
        self.breaker.on_success(elapsed)
        self._latency.observe(elapsed)
        return result

    async def _retry(self, operation: Callable[..., Awaitable[T]], args: tuple[Any, ...], first: Exception) -> T:
        # The first attempt already failed: tenacity replays that failure as its attempt 1, so the
        # backoff, attempt count, deadline and budget all apply from here on.
        pending: Exception | None = first
        try:
            async for attempt in retrying(
                attempts=self.cfg.retry_attempts,
                initial_seconds=self.cfg.retry_initial_seconds,
                max_seconds=self.cfg.retry_max_seconds,
                budget=self.budget,
                on_exhausted=self._on_budget_exhausted,
                on_retry=self._on_retry,
                sleep=self.sleep,
            ):
                with attempt:
                    if pending is not None:
                        error, pending = pending, None
                        raise error
                    return await self._once(operation, args)
        except Exception as exc:
            if is_transient(exc):
                self._gave_up.inc()
            raise
        raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover

    def _on_retry(self, state: RetryCallState) -> None:
        self._retried.inc()
        if _listeners:
            error = state.outcome.exception() if state.outcome is not None else None
            _tell(
                self.name,
                "retry",
                {
                    "attempt": state.attempt_number + 1,
                    "backoff_seconds": round(state.upcoming_sleep, 3),
                    "error": type(error).__name__,
                },
            )

    def _on_budget_exhausted(self) -> None:
        self._budget_exhausted.inc()
        if _listeners:
            _tell(self.name, "retry_budget_exhausted", {})

    def _on_transition(self, name: str, old: BreakerState, new: BreakerState) -> None:
        self._metrics.breaker_state.labels(name).set(new)
        self._metrics.breaker_transitions.labels(name, old.name.lower(), new.name.lower()).inc()


def breaker_config(cfg: ResilienceSettings, call_timeout_seconds: float) -> BreakerConfig:
    return BreakerConfig(
        window_seconds=cfg.breaker_window_seconds,
        minimum_calls=cfg.breaker_minimum_calls,
        failure_rate=cfg.breaker_failure_rate,
        slow_call_seconds=cfg.breaker_slow_call_seconds or 0.8 * call_timeout_seconds,
        slow_call_rate=cfg.breaker_slow_call_rate,
        open_seconds=cfg.breaker_open_seconds,
        max_open_seconds=cfg.breaker_max_open_seconds,
        half_open_calls=cfg.breaker_half_open_calls,
    )
