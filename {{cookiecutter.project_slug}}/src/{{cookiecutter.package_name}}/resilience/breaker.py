"""Circuit breaker with resilience4j semantics, written for asyncio.

Written here because no maintained asyncio-native breaker exists: pybreaker's async path needs
Tornado, aiobreaker has been unmaintained since 2021, and purgatory counts consecutive failures only
(no failure-rate window, no slow calls).

Closed: calls pass and land in a sliding window (time-based, one bucket per second);
once it holds ``minimum_calls``, a failure rate or slow-call rate at or above its threshold opens the
breaker. Open: calls fail at once with ``BreakerOpen(retry_after)``. After the open duration (doubling
with each consecutive opening, jittered, capped) the breaker half-opens: ``half_open_calls`` trial calls
pass; all succeeding closes it, one failing reopens it. It half-opens when the wait is over, not at the next
call (resilience4j's automatic transition): a timer on the event loop makes the move, so that the state gauge,
health and the admin route of a service with no traffic stop reporting "open" for a dependency that may have
healed; without a running loop, the next call or reading makes it. Operators may force it open, disable it, or
reset it. Every decision is O(1) and reads time only through ``clock``.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2
    FORCED_OPEN = 3
    DISABLED = 4


# The members under plain names: ``BreakerState.CLOSED`` is looked up through the enum's metaclass (about
# 0.17 us on CPython 3.11), and the closed path reads a state on every call.
CLOSED, HALF_OPEN, OPEN, FORCED_OPEN, DISABLED = BreakerState


class BreakerOpen(Exception):
    """The breaker refuses calls; try again in ``retry_after`` seconds."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit breaker {name!r} is open; retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """The knobs, with no defaults of their own: the service's settings hold those (``GuardSettings``)."""

    window_seconds: float
    minimum_calls: int
    failure_rate: float
    slow_call_seconds: float
    slow_call_rate: float
    open_seconds: float
    max_open_seconds: float
    half_open_calls: int
    jitter: float = 0.1


class _TimeWindow:
    """Calls of the last ``seconds`` whole seconds, aggregated per second in a ring of buckets."""

    def __init__(self, seconds: float) -> None:
        self.size = max(1, int(seconds))
        self.epochs = [-1] * self.size
        self.counts = [[0, 0, 0] for _ in range(self.size)]  # calls, failures, slow
        self.totals = [0, 0, 0]
        self._second = -1  # the second of the last call, and its bucket: most calls land in it
        self._bucket = self.counts[0]

    def _advance(self, second: int) -> list[int]:
        index = second % self.size
        if self.epochs[index] != second:
            stale = self.counts[index]
            for i in range(3):
                self.totals[i] -= stale[i]
                stale[i] = 0
            self.epochs[index] = second
        self._second, self._bucket = second, self.counts[index]
        return self._bucket

    def record(self, now: float, failed: bool, slow: bool) -> None:
        second = int(now)
        bucket = self._bucket if second == self._second else self._advance(second)
        bucket[0] += 1
        self.totals[0] += 1
        if failed:
            bucket[1] += 1
            self.totals[1] += 1
        if slow:
            bucket[2] += 1
            self.totals[2] += 1

    def snapshot(self, now: float) -> tuple[int, int, int]:
        # Expire every bucket older than the window, so rates read at any time are current.
        second = int(now)
        for index, epoch in enumerate(self.epochs):
            if epoch != -1 and second - epoch >= self.size:
                stale = self.counts[index]
                for i in range(3):
                    self.totals[i] -= stale[i]
                    stale[i] = 0
                self.epochs[index] = -1
        return self.totals[0], self.totals[1], self.totals[2]

    def clear(self) -> None:
        self.__init__(self.size)  # type: ignore[misc]


Listener = Callable[[str, BreakerState, BreakerState], None]


class Breaker:
    def __init__(
        self,
        name: str,
        cfg: BreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.window = _TimeWindow(cfg.window_seconds)
        self.state = CLOSED
        self.listeners: list[Listener] = []
        self.openings = 0
        self.open_until = 0.0
        self.trials_started = 0
        self.trials_passed = 0
        self._half_open_timer: asyncio.TimerHandle | None = None

    # -- decisions -------------------------------------------------------------------------------

    def before_call(self) -> None:
        """Let a call through or raise BreakerOpen; the hot path is one comparison when closed."""
        state = self.state
        if state is CLOSED or state is DISABLED:
            return
        if state is OPEN:
            now = self.clock()
            if now < self.open_until:
                raise BreakerOpen(self.name, self.open_until - now)
            self._transition(HALF_OPEN)
        if self.state is HALF_OPEN:
            if self.trials_started >= self.cfg.half_open_calls:
                raise BreakerOpen(self.name, self.cfg.open_seconds)
            self.trials_started += 1
            return
        raise BreakerOpen(self.name, self.cfg.max_open_seconds)  # forced open

    def on_success(self, duration: float) -> None:
        self._record(False, duration >= self.cfg.slow_call_seconds)

    def on_failure(self, duration: float) -> None:
        self._record(True, duration >= self.cfg.slow_call_seconds)

    def on_ignored(self) -> None:
        """A call that ended in neither success nor failure (cancelled, or a caller's error) frees its trial slot."""
        if self.state is HALF_OPEN and self.trials_started > self.trials_passed:
            self.trials_started -= 1

    def _record(self, failed: bool, slow: bool) -> None:
        state = self.state
        if state is CLOSED:
            now = self.clock()
            self.window.record(now, failed, slow)
            if failed or slow:
                calls, failures, slows = self.window.snapshot(now)
                if calls >= self.cfg.minimum_calls and (
                    failures >= self.cfg.failure_rate * calls or slows >= self.cfg.slow_call_rate * calls
                ):
                    self._open()
        elif state is HALF_OPEN:
            if failed or slow:
                self._open()
            else:
                self.trials_passed += 1
                if self.trials_passed >= self.cfg.half_open_calls:
                    self.openings = 0
                    self._transition(CLOSED)

    def _open(self) -> None:
        self.openings += 1
        base = min(self.cfg.open_seconds * 2 ** (self.openings - 1), self.cfg.max_open_seconds)
        spread = base * self.cfg.jitter
        duration = min(base + self.rng.uniform(-spread, spread), self.cfg.max_open_seconds)
        self.open_until = self.clock() + duration
        self._transition(OPEN)
        self._half_open_later(duration)

    def _half_open_later(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop here: the next call or reading half-opens it
        self._half_open_timer = loop.call_later(delay, self._half_open_if_due)

    def _half_open_if_due(self) -> None:
        self._half_open_timer = None
        if self.state is OPEN:
            left = self.open_until - self.clock()
            if left > 0:
                self._half_open_later(left)
            else:
                self._transition(HALF_OPEN)

    def _transition(self, to: BreakerState) -> None:
        previous, self.state = self.state, to
        if self._half_open_timer is not None:
            self._half_open_timer.cancel()
            self._half_open_timer = None
        self.trials_started = self.trials_passed = 0
        if to is CLOSED:
            self.window.clear()
        for listener in self.listeners:
            listener(self.name, previous, to)

    # -- operators -------------------------------------------------------------------------------

    def force_open(self) -> None:
        self._transition(FORCED_OPEN)

    def disable(self) -> None:
        self._transition(DISABLED)

    def reset(self) -> None:
        self.openings = 0
        self._transition(CLOSED)

    # -- reading ---------------------------------------------------------------------------------

    @property
    def retry_after(self) -> float:
        if self.state is OPEN:
            return max(0.0, self.open_until - self.clock())
        return 0.0

    def snapshot(self) -> dict[str, object]:
        if self.state is OPEN and self._half_open_timer is None:
            self._half_open_if_due()  # opened where no loop ran
        calls, failures, slows = self.window.snapshot(self.clock())
        return {
            "state": self.state.name.lower(),
            "calls": calls,
            "failure_rate": round(failures / calls, 3) if calls else 0.0,
            "slow_call_rate": round(slows / calls, 3) if calls else 0.0,
            "retry_after": round(self.retry_after, 3),
        }
