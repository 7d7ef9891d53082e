from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.resilience import Breaker, BreakerConfig, BreakerOpen, BreakerState
from tests.fakes import FakeClock

CFG = BreakerConfig(
    window_seconds=10,
    minimum_calls=4,
    failure_rate=0.5,
    slow_call_seconds=1.0,
    slow_call_rate=0.75,
    open_seconds=5,
    max_open_seconds=20,
    half_open_calls=2,
    jitter=0.0,
)


def make(cfg: BreakerConfig = CFG) -> tuple[Breaker, FakeClock]:
    clock = FakeClock()
    return Breaker("db", cfg, clock=clock, rng=random.Random(0)), clock


def fail(breaker: Breaker, times: int = 1, duration: float = 0.01) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.on_failure(duration)


def succeed(breaker: Breaker, times: int = 1, duration: float = 0.01) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.on_success(duration)


def test_stays_closed_below_minimum_calls() -> None:
    """Three failures out of three calls do not open a breaker that needs four calls."""
    breaker, _ = make()
    fail(breaker, 3)
    assert breaker.state is BreakerState.CLOSED


def test_opens_at_failure_rate_and_rejects_at_once() -> None:
    """Half of the window failing opens the breaker; the next call is refused with a retry-after."""
    breaker, _ = make()
    succeed(breaker, 2)
    fail(breaker, 2)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(BreakerOpen) as refused:
        breaker.before_call()
    assert refused.value.retry_after == pytest.approx(5)


def test_slow_calls_open_it_too() -> None:
    """Calls that succeed but take too long open the breaker once their rate crosses the threshold."""
    breaker, _ = make()
    succeed(breaker, 1)
    succeed(breaker, 3, duration=2.0)
    assert breaker.state is BreakerState.OPEN


def test_old_calls_leave_the_window() -> None:
    """Failures older than the time window no longer count."""
    breaker, clock = make()
    fail(breaker, 1)
    succeed(breaker, 2)
    clock.advance(11)
    fail(breaker, 1)
    succeed(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_closes_after_trials_pass() -> None:
    """After the open duration, the trial calls pass and close the breaker."""
    breaker, clock = make()
    fail(breaker, 4)
    clock.advance(5)
    succeed(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


async def test_an_open_breaker_half_opens_when_its_wait_is_over_without_any_call() -> None:
    """No call comes after it opens: once the open duration has passed, its state, its listeners (the state gauge)
    and its snapshot (health, the admin route) say half-open."""
    breaker = Breaker("search", dataclasses.replace(CFG, open_seconds=0.05, max_open_seconds=0.05))
    seen: list[BreakerState] = []
    breaker.listeners.append(lambda _name, _old, new: seen.append(new))
    fail(breaker, 4)
    assert breaker.snapshot()["state"] == "open"
    await asyncio.sleep(0.2)
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN]
    assert breaker.snapshot()["state"] == "half_open" and breaker.snapshot()["retry_after"] == 0


def test_opened_without_an_event_loop_it_reads_half_open_once_due() -> None:
    breaker, clock = make()
    fail(breaker, 4)
    clock.advance(4.9)
    assert breaker.snapshot()["state"] == "open"
    clock.advance(0.1)
    assert breaker.snapshot()["state"] == "half_open"
    succeed(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


async def test_a_reset_or_a_reopening_replaces_the_pending_half_open() -> None:
    """An operator's reset cancels the move to half-open; a breaker forced open stays so."""
    breaker = Breaker("search", dataclasses.replace(CFG, open_seconds=0.05, max_open_seconds=0.05))
    fail(breaker, 4)
    breaker.force_open()
    await asyncio.sleep(0.2)
    assert breaker.state is BreakerState.FORCED_OPEN


def test_half_open_limits_trials_and_reopens_longer_on_failure() -> None:
    """Only the configured trials pass while half-open; one failing reopens for twice as long."""
    breaker, clock = make()
    fail(breaker, 4)
    clock.advance(5)
    breaker.before_call()
    breaker.before_call()
    with pytest.raises(BreakerOpen):
        breaker.before_call()
    breaker.on_failure(0.01)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after == pytest.approx(10)


def test_ignored_calls_free_their_trial_slot() -> None:
    """A cancelled trial call gives its slot back instead of wedging the breaker half-open."""
    breaker, clock = make()
    fail(breaker, 4)
    clock.advance(5)
    breaker.before_call()
    breaker.on_ignored()
    succeed(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


def test_operators_can_force_open_disable_and_reset() -> None:
    """Forced open refuses everything; disabled lets everything through; reset closes."""
    breaker, _ = make()
    transitions: list[tuple[BreakerState, BreakerState]] = []
    breaker.listeners.append(lambda _name, old, new: transitions.append((old, new)))
    breaker.force_open()
    with pytest.raises(BreakerOpen):
        breaker.before_call()
    breaker.disable()
    fail(breaker, 10)
    assert breaker.state is BreakerState.DISABLED
    breaker.reset()
    assert transitions[-1] == (BreakerState.DISABLED, BreakerState.CLOSED)


class Reference:
    """The breaker's rules restated naively: keep every call, recount everything each time."""

    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self.calls: list[tuple[float, bool, bool]] = []
        self.state = "closed"
        self.open_until = 0.0
        self.openings = 0
        self.trials = 0
        self.passed = 0

    def allow(self, now: float) -> bool:
        if self.state == "open" and now >= self.open_until:
            self.state, self.trials, self.passed = "half_open", 0, 0
        if self.state == "open":
            return False
        if self.state == "half_open":
            if self.trials >= self.cfg.half_open_calls:
                return False
            self.trials += 1
        return True

    def record(self, now: float, failed: bool, slow: bool) -> None:
        if self.state == "half_open":
            if failed or slow:
                self._open(now)
            else:
                self.passed += 1
                if self.passed >= self.cfg.half_open_calls:
                    self.state, self.calls, self.openings = "closed", [], 0
            return
        self.calls.append((now, failed, slow))
        recent = [c for c in self.calls if int(now) - int(c[0]) < int(self.cfg.window_seconds)]
        failures, slows = sum(c[1] for c in recent), sum(c[2] for c in recent)
        if (
            (failed or slow)
            and len(recent) >= self.cfg.minimum_calls
            and (failures >= self.cfg.failure_rate * len(recent) or slows >= self.cfg.slow_call_rate * len(recent))
        ):
            self._open(now)

    def _open(self, now: float) -> None:
        self.openings += 1
        self.open_until = now + min(self.cfg.open_seconds * 2 ** (self.openings - 1), self.cfg.max_open_seconds)
        self.state = "open"


steps = st.lists(
    st.tuples(st.sampled_from(["ok", "fail", "slow"]), st.floats(min_value=0, max_value=4, allow_nan=False)),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_matches_the_reference_model(sequence: list[tuple[str, float]]) -> None:
    """For any sequence of outcomes and clock steps, the breaker decides exactly as the naive model."""
    breaker, clock = make()
    model = Reference(CFG)
    for outcome, step in sequence:
        clock.advance(step)
        try:
            breaker.before_call()
            allowed = True
        except BreakerOpen:
            allowed = False
        assert allowed == model.allow(clock.now)
        if allowed:
            duration = 2.0 if outcome == "slow" else 0.01
            (breaker.on_failure if outcome == "fail" else breaker.on_success)(duration)
            model.record(clock.now, outcome == "fail", outcome == "slow")
        assert breaker.state.name.lower() == model.state
