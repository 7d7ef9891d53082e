from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from {{ cookiecutter.package_name }}.db import ERRORS
from {{ cookiecutter.package_name }}.metrics import Metrics
from {{ cookiecutter.package_name }}.resilience import (
    BreakerOpen,
    BreakerState,
    Bulkhead,
    BulkheadFull,
    DeadlineExceeded,
    DependencyUnavailable,
    Guard,
    Guards,
    RetryBudget,
    deadline,
)
from {{ cookiecutter.package_name }}.settings import DbResilienceSettings
from tests.fakes import FakeClock


def guard(clock: FakeClock, **overrides: object) -> tuple[Guard, Metrics]:
    cfg = DbResilienceSettings.model_validate(
        {"breaker_minimum_calls": 5, "retry_budget_floor": 0.0, "retry_budget_ratio": 0.1, **overrides}
    )
    metrics = Metrics(CollectorRegistry())
    observer = metrics.guard("database")
    return Guard("database", cfg, ERRORS, observer, call_timeout_seconds=1.0, clock=clock, sleep=clock.sleep), metrics


class Flaky:
    """An operation that fails with ``error`` for its first ``failures`` calls."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_errors_are_classified_by_whose_fault_they_are() -> None:
    """To the database's guard, connection errors are transient, timeouts count but are not retried, and a
    caller's error, a refusal of a guard's or a cancellation never counts."""
    assert ERRORS.is_transient(ConnectionResetError())
    assert ERRORS.is_failure(TimeoutError()) and not ERRORS.is_transient(TimeoutError())
    assert not ERRORS.is_failure(ValueError("bad input"))
    assert not ERRORS.is_failure(BreakerOpen("db", 1.0))
    assert not ERRORS.is_failure(asyncio.CancelledError())


async def test_a_guarded_failure_leaves_as_the_guards_own_error() -> None:
    """A failure of the guarded call is raised as DependencyUnavailable naming the dependency, from the driver's
    error; any other error of the operation is raised as it was, a bug rather than an outage."""
    dependency, _ = guard(FakeClock())
    with pytest.raises(DependencyUnavailable, match=r"The database is unavailable\.") as raised:
        await dependency.call(Flaky(1, ConnectionRefusedError()))
    assert raised.value.name == "database" and isinstance(raised.value.__cause__, ConnectionRefusedError)
    with pytest.raises(KeyError):
        await dependency.call(Flaky(1, KeyError("a bug")))


async def test_a_transient_failure_is_retried_for_reads() -> None:
    """An idempotent call that fails once on a dropped connection succeeds on the retry."""
    operation = Flaky(1, ConnectionResetError())
    dependency, metrics = guard(FakeClock())
    assert await dependency.call(operation, idempotent=True) == "ok"
    assert operation.calls == 2
    assert sample(metrics, "retries_total", dependency="database", outcome="attempted") == 1


async def test_writes_are_not_retried() -> None:
    """A non-idempotent call fails on its first transient error."""
    operation = Flaky(1, ConnectionResetError())
    dependency, _ = guard(FakeClock())
    with pytest.raises(DependencyUnavailable):
        await dependency.call(operation)
    assert operation.calls == 1


async def test_attempts_are_capped() -> None:
    """A call that keeps failing is tried at most three times in all."""
    operation = Flaky(10, ConnectionResetError())
    dependency, metrics = guard(FakeClock(), retry_budget_floor=100.0)
    with pytest.raises(DependencyUnavailable):
        await dependency.call(operation, idempotent=True)
    assert operation.calls == 3
    assert sample(metrics, "retries_total", dependency="database", outcome="gave_up") == 1


async def test_caller_errors_are_neither_retried_nor_counted() -> None:
    """A ValueError passes straight through and leaves the breaker's window empty."""
    operation = Flaky(10, ValueError("bad"))
    dependency, _ = guard(FakeClock())
    for _ in range(10):
        with pytest.raises(ValueError, match="bad"):
            await dependency.call(operation, idempotent=True)
    assert operation.calls == 10
    assert dependency.breaker.state is BreakerState.CLOSED


async def test_retry_stops_when_the_breaker_opens() -> None:
    """Once failures open the breaker, calls fail fast with BreakerOpen and the operation is not touched."""
    operation = Flaky(1000, ConnectionResetError())
    dependency, metrics = guard(FakeClock(), retry_budget_floor=100.0)
    for _ in range(5):
        with pytest.raises((DependencyUnavailable, BreakerOpen)):
            await dependency.call(operation, idempotent=True)
    calls = operation.calls
    with pytest.raises(BreakerOpen):
        await dependency.call(operation, idempotent=True)
    assert operation.calls == calls
    assert sample(metrics, "breaker_state", dependency="database") == BreakerState.OPEN


async def test_listeners_hear_retries_and_fast_failures() -> None:
    """A listener hears each retry and each call the open breaker refused, with the dependency's name, until it
    stops listening."""
    heard: list[tuple[str, str, dict[str, object]]] = []
    guards = Guards()
    dependency, _ = guard(FakeClock())
    guards.add(dependency)
    stop = guards.listen(lambda dependency, event, attributes: heard.append((dependency, event, dict(attributes))))
    try:
        assert await dependency.call(Flaky(1, ConnectionResetError()), idempotent=True) == "ok"
        dependency.breaker.force_open()
        with pytest.raises(BreakerOpen):
            await dependency.call(Flaky(0, ConnectionResetError()), idempotent=True)
    finally:
        stop()
    with pytest.raises(BreakerOpen):
        await dependency.call(Flaky(0, ConnectionResetError()), idempotent=True)
    assert [(name, event) for name, event, _ in heard] == [("database", "retry"), ("database", "breaker_open")]
    assert heard[0][2]["attempt"] == 2
    assert heard[0][2]["error"] == "ConnectionResetError"


def test_budget_holds_retries_to_a_fraction_of_calls() -> None:
    """With every call failing, a 10% budget allows about one retry per ten calls."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, floor=0.0, clock=clock)
    budget.tokens = 0.0
    retries = 0
    for _ in range(1000):
        budget.on_call()
        retries += budget.try_spend()
    assert 95 <= retries <= 101


def test_budget_floor_refills_with_time() -> None:
    """A quiet service still gets ``floor`` retries per second."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, floor=2.0, clock=clock)
    budget.tokens = 0.0
    clock.advance(1.0)
    assert budget.try_spend() and budget.try_spend()
    assert not budget.try_spend()


async def test_retry_storm_stays_within_budget() -> None:
    """With every read failing transiently and the breaker disabled, retries stay near 10% of calls."""
    clock = FakeClock()
    dependency, _ = guard(clock)
    dependency.breaker.disable()
    operation = Flaky(10**6, ConnectionResetError())
    calls = 500
    for _ in range(calls):
        clock.advance(0.01)
        with pytest.raises(DependencyUnavailable):
            await dependency.call(operation, idempotent=True)
    retries = operation.calls - calls
    assert retries <= 0.1 * calls + dependency.budget.capacity


async def test_bulkhead_refuses_after_a_short_wait() -> None:
    """With every slot taken, the next caller waits briefly and gets BulkheadFull."""
    bulkhead = Bulkhead("db", limit=2, wait_seconds=0.01)
    await bulkhead.acquire()
    await bulkhead.acquire()
    with pytest.raises(BulkheadFull):
        await bulkhead.acquire()
    bulkhead.release()
    await bulkhead.acquire()
    assert bulkhead.in_use == 2


async def test_bulkhead_hands_a_freed_slot_to_the_longest_waiting() -> None:
    """Waiters are served first come, first served; a new caller cannot jump the queue."""
    bulkhead = Bulkhead("db", limit=1, wait_seconds=5)
    assert bulkhead.try_acquire()
    first, second = (asyncio.create_task(bulkhead.acquire()) for _ in range(2))
    await asyncio.sleep(0)
    bulkhead.release()
    await asyncio.sleep(0)
    assert first.done() and not second.done()
    assert not bulkhead.try_acquire(), "the slot went to the first waiter"
    bulkhead.release()
    await second
    assert bulkhead.in_use == 1


async def test_bulkhead_slots_survive_cancelled_waiters() -> None:
    """A waiter cancelled while queued, or just as its slot arrived, leaves no slot taken."""
    bulkhead = Bulkhead("db", limit=1, wait_seconds=5)
    assert bulkhead.try_acquire()
    gone, lucky, last = (asyncio.create_task(bulkhead.acquire()) for _ in range(3))
    await asyncio.sleep(0)
    gone.cancel()  # cancelled while queued
    bulkhead.release()  # skips it: the slot goes to lucky
    lucky.cancel()  # cancelled before it could run with its slot: passes it on to last
    results = await asyncio.gather(gone, lucky, last, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["CancelledError", "CancelledError", "NoneType"]
    assert bulkhead.in_use == 1
    bulkhead.release()
    assert bulkhead.in_use == 0 and bulkhead.try_acquire()


def test_deadline_bounds_downstream_timeouts() -> None:
    """Inside a request, every timeout is the smaller of its own and what is left of the deadline."""
    assert deadline.bounded(5.0) == 5.0
    with deadline.within(2.0):
        assert 1.9 < deadline.bounded(5.0) <= 2.0
        assert deadline.bounded(0.5) == 0.5


def test_an_expired_deadline_stops_work_before_it_starts() -> None:
    """Once the deadline has passed, check() raises instead of calling downstream."""
    with deadline.within(-0.001), pytest.raises(DeadlineExceeded):
        deadline.check()


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, 10.0), (b"2.5", 2.5), (b"60", 10.0), (b"-1", 10.0), (b"soon", 10.0)],
)
def test_clients_may_only_shorten_the_deadline(header: bytes | None, expected: float) -> None:
    """X-Request-Timeout lowers the deadline; a longer, negative or malformed value is ignored."""
    assert deadline.parse_timeout(header, 10.0) == expected
