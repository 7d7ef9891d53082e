"""One dependency's guard: retry( breaker( bulkhead( operation ))), told to its observer.

The happy path stays cheap (a few microseconds): the first attempt runs outside tenacity, which takes
over only after a transient failure, and per-call timeouts are the drivers' own (statement_timeout,
socket timeouts) under the request's single deadline rather than a fresh timer around every call.

A guard knows its own client's errors (its ``Classifier``): a failure of the guarded call leaves it as
``DependencyUnavailable(name)`` raised from the driver's error, and anything else as it was raised, so that a
bug in the operation stays a bug. Its decisions off the happy path (a call refused by the open breaker or the
full bulkhead, a retry, a retry the budget refused) are told, as they happen and in the caller's context, to
its ``listeners``: an optional part can note them on the request that met them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from tenacity import RetryCallState

from . import deadline
from .breaker import Breaker, BreakerConfig, BreakerOpen, BreakerState
from .bulkhead import Bulkhead, BulkheadFull
from .errors import Classifier, DependencyUnavailable
from .retry import RetryBudget, retrying

T = TypeVar("T")
# (guard, event, attributes); run on the caller's path, so quick and never raising.
Listener = Callable[[str, str, Mapping[str, object]], None]


class GuardSettings(Protocol):
    """A guard's knobs, as the service's settings hold them (one group per dependency)."""

    @property
    def breaker_window_seconds(self) -> float: ...
    @property
    def breaker_minimum_calls(self) -> int: ...
    @property
    def breaker_failure_rate(self) -> float: ...
    @property
    def breaker_slow_call_seconds(self) -> float | None: ...
    @property
    def breaker_slow_call_rate(self) -> float: ...
    @property
    def breaker_open_seconds(self) -> float: ...
    @property
    def breaker_max_open_seconds(self) -> float: ...
    @property
    def breaker_half_open_calls(self) -> int: ...
    @property
    def retry_attempts(self) -> int: ...
    @property
    def retry_initial_seconds(self) -> float: ...
    @property
    def retry_max_seconds(self) -> float: ...
    @property
    def retry_budget_ratio(self) -> float: ...
    @property
    def retry_budget_floor(self) -> float: ...
    @property
    def bulkhead_limit(self) -> int: ...
    @property
    def bulkhead_wait_seconds(self) -> float: ...


class GuardObserver(Protocol):
    """What a guard's metrics are told: each call's latency, each refusal, retry decision and transition."""

    def called(self, elapsed: float, failed: bool) -> None: ...
    def refused(self, reason: str) -> None: ...  # "rejected" (breaker open) or "bulkhead_full"
    def retried(self, outcome: str) -> None: ...  # "attempted", "budget_exhausted" or "gave_up"
    def transition(self, old: BreakerState, new: BreakerState) -> None: ...


class Guard:
    def __init__(
        self,
        name: str,
        cfg: GuardSettings,
        classifier: Classifier,
        observer: GuardObserver,
        *,
        call_timeout_seconds: float,
        critical: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.classifier = classifier
        self.observer = observer
        self.critical = critical  # an open breaker fails the detailed health report rather than warning
        self.clock = clock
        self.sleep = sleep
        self.listeners: list[Listener] = []
        self.breaker = Breaker(name, breaker_config(cfg, call_timeout_seconds), clock=clock)
        self.bulkhead = Bulkhead(name, cfg.bulkhead_limit, cfg.bulkhead_wait_seconds)
        self.budget = RetryBudget(cfg.retry_budget_ratio, cfg.retry_budget_floor, clock=clock)
        observer.transition(BreakerState.CLOSED, BreakerState.CLOSED)
        self.breaker.listeners.append(lambda _name, old, new: observer.transition(old, new))

    async def call(self, operation: Callable[..., Awaitable[T]], *args: Any, idempotent: bool = False) -> T:
        """Run ``operation(*args)`` under the guard; only ``idempotent`` work is retried."""
        self.budget.on_call()
        try:
            return await self._once(operation, args)
        except Exception as exc:
            if not self.classifier.is_failure(exc):
                raise
            if not idempotent or not self.classifier.is_transient(exc):
                raise DependencyUnavailable(self.name) from exc
            first = exc
        return await self._retry(operation, args, first)

    async def _once(self, operation: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        deadline.check()
        try:
            self.breaker.before_call()
        except BreakerOpen as exc:
            self.observer.refused("rejected")
            if self.listeners:
                self._tell("breaker_open", {"retry_after_seconds": round(exc.retry_after, 3)})
            raise
        if not self.bulkhead.try_acquire():
            try:
                await self.bulkhead.acquire()
            except BulkheadFull:
                self.breaker.on_ignored()
                self.observer.refused("bulkhead_full")
                if self.listeners:
                    self._tell("bulkhead_full", {"limit": self.cfg.bulkhead_limit})
                raise
        started = self.clock()
        try:
            result = await operation(*args)
        except BaseException as exc:
            if isinstance(exc, Exception) and self.classifier.is_failure(exc):
                elapsed = self.clock() - started
                self.breaker.on_failure(elapsed)
                self.observer.called(elapsed, True)
            else:
                self.breaker.on_ignored()
            raise
        finally:
            self.bulkhead.release()
        elapsed = self.clock() - started
        self.breaker.on_success(elapsed)
        self.observer.called(elapsed, False)
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
                transient=self.classifier.is_transient,
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
            if not self.classifier.is_failure(exc):
                raise
            if self.classifier.is_transient(exc):
                self.observer.retried("gave_up")
            raise DependencyUnavailable(self.name) from exc
        raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover

    def _tell(self, event: str, attributes: Mapping[str, object]) -> None:
        for listener in self.listeners:
            listener(self.name, event, attributes)

    def _on_retry(self, state: RetryCallState) -> None:
        self.observer.retried("attempted")
        if self.listeners:
            error = state.outcome.exception() if state.outcome is not None else None
            attributes = {
                "attempt": state.attempt_number + 1,
                "backoff_seconds": round(state.upcoming_sleep, 3),
                "error": type(error).__name__,
            }
            self._tell("retry", attributes)

    def _on_budget_exhausted(self) -> None:
        self.observer.retried("budget_exhausted")
        if self.listeners:
            self._tell("retry_budget_exhausted", {})


class Guards:
    """Every guard of the service, by name, and the listeners they all tell (a part adds one with ``listen``)."""

    def __init__(self) -> None:
        self._guards: dict[str, Guard] = {}
        self._listeners: list[Listener] = []

    def add(self, guard: Guard) -> Guard:
        if guard.name in self._guards:
            raise ValueError(f"a guard named {guard.name!r} exists already")
        guard.listeners = self._listeners  # shared: a listener added later hears every guard
        self._guards[guard.name] = guard
        return guard

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Tell ``listener`` every guard's events: breaker_open, bulkhead_full, retry, retry_budget_exhausted.

        Returns the function that stops it; the part that listens calls it when its lifespan closes.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def get(self, name: str) -> Guard | None:
        return self._guards.get(name)

    def __iter__(self) -> Iterator[Guard]:
        return iter(self._guards.values())


def breaker_config(cfg: GuardSettings, call_timeout_seconds: float) -> BreakerConfig:
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
