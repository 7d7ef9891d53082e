"""Retries with tenacity, bounded three ways: attempts, the request's deadline, and a retry budget.

The budget is a token bucket per dependency: every call deposits ``ratio`` of a token, every retry
spends one, and ``floor`` tokens per second trickle in so that a quiet service can still retry. During
an outage retries therefore stay near ``ratio`` of calls instead of multiplying the load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base

from . import deadline


class RetryBudget:
    def __init__(self, ratio: float, floor: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ratio = ratio
        self.floor = floor
        self.capacity = max(1.0, floor) + 10 * ratio
        self.clock = clock
        self.tokens = self.capacity
        self.updated = clock()

    def on_call(self) -> None:
        tokens = self.tokens + self.ratio
        self.tokens = tokens if tokens < self.capacity else self.capacity

    def try_spend(self) -> bool:
        """Take one token for a retry; False when the budget is spent."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.floor)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _stop_before_deadline(stop_base):
    """Stop when the next wait would end past the request's deadline."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        left = deadline.remaining()
        upcoming = retry_state.upcoming_sleep or 0.0
        return left is not None and left <= upcoming


class _stop_when_budget_spent(stop_base):
    def __init__(self, budget: RetryBudget, on_exhausted: Callable[[], None]) -> None:
        self.budget = budget
        self.on_exhausted = on_exhausted

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.budget.try_spend():
            return False
        self.on_exhausted()
        return True


def retrying(
    *,
    attempts: int,
    initial_seconds: float,
    max_seconds: float,
    budget: RetryBudget,
    transient: Callable[[BaseException], bool],
    on_exhausted: Callable[[], None] = lambda: None,
    on_retry: Callable[[RetryCallState], None] = lambda _state: None,
    sleep: Callable[[float], Any] | None = None,
) -> AsyncRetrying:
    """``transient`` errors only, full-jitter exponential backoff, stopping at whichever limit comes first.

    Budget is checked last, so a token is spent only for a retry that will really happen.
    """
    options: dict[str, Any] = {}
    if sleep is not None:
        options["sleep"] = sleep
    return AsyncRetrying(
        retry=retry_if_exception(transient),
        wait=wait_random_exponential(multiplier=initial_seconds, max=max_seconds),
        stop=stop_after_attempt(attempts) | _stop_before_deadline() | _stop_when_budget_spent(budget, on_exhausted),
        before_sleep=on_retry,
        reraise=True,
        **options,
    )
