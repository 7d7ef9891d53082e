from __future__ import annotations

import asyncio
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.resilience.admission import Admission, GradientLimit, LimitConfig
from tests.fakes import FakeClock

CFG = LimitConfig(initial_limit=20, min_limit=3, max_limit=200, queue_delay=0.05, min_rtt_requests=5)


def make(cfg: LimitConfig = CFG) -> tuple[GradientLimit, FakeClock]:
    clock = FakeClock()
    return GradientLimit(cfg, clock=clock), clock


def serve(limit: GradientLimit, clock: FakeClock, *, concurrency: int, rtt: float, windows: int) -> int:
    """Keep ``concurrency`` requests offered, each taking ``rtt``; returns how many found no slot."""
    refused = 0
    for _ in range(windows):
        admitted = [clock() for _ in range(concurrency) if limit.try_acquire()]
        refused += concurrency - len(admitted)
        clock.advance(rtt)
        for at in admitted:
            limit.release(at)
        clock.advance(max(0.0, limit.cfg.window_seconds - rtt))
    return refused


def measured(limit: GradientLimit, clock: FakeClock, rtt: float = 0.002) -> None:
    serve(limit, clock, concurrency=limit.cfg.min_concurrency, rtt=rtt, windows=2)
    assert limit.min_rtt is not None


def test_measures_the_minimum_rtt_first_at_the_initial_limit() -> None:
    """While the first requests measure the idle latency, the initial limit holds: a pod that starts under load is
    not refused for the sake of a measurement."""
    limit, clock = make()
    admitted_at = clock()
    assert [limit.try_acquire() for _ in range(21)] == [True] * 20 + [False]
    clock.advance(0.002)
    for _ in range(20):
        limit.release(admitted_at)
    assert limit.min_rtt == pytest.approx(0.002)
    assert limit.current == 20


def test_queueing_over_the_target_shrinks_the_limit() -> None:
    """Latency far over min RTT + queue delay halves the limit each window, down to its floor at most."""
    limit, clock = make()
    measured(limit, clock)
    serve(limit, clock, concurrency=20, rtt=0.5, windows=1)
    assert limit.current < 20
    serve(limit, clock, concurrency=20, rtt=0.5, windows=20)
    assert limit.current >= CFG.min_limit


def test_fast_answers_under_full_use_grow_the_limit() -> None:
    """Requests answered near the idle latency while the limit is in use let it grow, up to max_limit."""
    limit, clock = make()
    measured(limit, clock)
    serve(limit, clock, concurrency=500, rtt=0.002, windows=30)
    assert limit.current == CFG.max_limit


def test_requests_refused_further_in_halve_the_limit() -> None:
    """Admitted requests that a guard refused (503) answer fast, which is no sign of capacity: each window with such
    drops halves the limit, however fast they were."""
    limit, clock = make()
    measured(limit, clock)
    start = limit.current
    for _ in range(2):
        admitted = [clock() for _ in range(start) if limit.try_acquire()]
        clock.advance(CFG.window_seconds)
        for at in admitted:
            limit.release(at, dropped=True)
    assert limit.current <= start // 4 + 1


def test_light_traffic_does_not_grow_the_limit() -> None:
    """With fewer than half of the limit in use, fast answers say nothing about capacity: the limit stays."""
    limit, clock = make()
    measured(limit, clock)
    serve(limit, clock, concurrency=5, rtt=0.002, windows=30)
    assert limit.current == 20


def test_a_slower_baseline_is_measured_again_once_the_limit_floors() -> None:
    """When a dependency slows so much that the limit floors, the idle latency is measured again and the limit
    recovers to the new baseline instead of starving at its floor."""
    limit, clock = make()
    measured(limit, clock)
    serve(limit, clock, concurrency=60, rtt=0.3, windows=10)  # the dependency now takes 300 ms
    assert limit.min_rtt is not None and limit.min_rtt >= 0.29
    serve(limit, clock, concurrency=60, rtt=0.3, windows=30)
    assert limit.current > CFG.min_limit


def test_requests_admitted_before_a_measurement_are_not_its_samples() -> None:
    """A request that queued behind the old limit does not count as a sample of the idle latency."""
    limit, clock = make()
    early = clock()
    assert limit.try_acquire()
    clock.advance(10)
    limit.release(early)
    measured(limit, clock)
    assert limit.min_rtt == pytest.approx(0.002)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 400), st.floats(0.0001, 2.0), st.floats(0.0, 0.3)), min_size=1, max_size=60),
    st.integers(1, 10),
    st.integers(10, 300),
)
def test_never_admits_more_than_its_limit_and_stays_in_bounds(
    steps: list[tuple[int, float, float]], min_limit: int, max_limit: int
) -> None:
    """Whatever the traffic, in flight never exceeds the current limit, which stays within its bounds."""
    cfg = dataclasses.replace(CFG, min_limit=min_limit, max_limit=max(min_limit, max_limit))
    limit, clock = make(cfg)
    held: list[float] = []
    for offered, rtt, pause in steps:
        for _ in range(offered):
            if limit.try_acquire():
                held.append(clock())
                assert limit.in_flight <= limit.current  # admitted only under the limit of the moment
        clock.advance(rtt)
        for at in held[: len(held) // 2 + 1]:
            limit.release(at)
        del held[: len(held) // 2 + 1]
        clock.advance(pause)
        assert cfg.min_limit <= limit.limit <= cfg.max_limit
        assert limit.in_flight == len(held) >= 0


# Waits in fake time; the real-time bound on each wait (the same seconds) is far beyond a test's run.
QUEUED = dataclasses.replace(CFG, queue_delay=10.0, target=5.0)


def full(cfg: LimitConfig = QUEUED) -> tuple[Admission, FakeClock]:
    limit, clock = make(cfg)
    admission = Admission(limit)
    while limit.try_acquire():
        pass
    return admission, clock


async def test_a_burst_waits_first_come_first_served() -> None:
    """Over the limit, requests wait for a slot; while the queue is young, a freed slot goes to the oldest."""
    admission, clock = full()
    first, second = asyncio.ensure_future(admission.wait()), asyncio.ensure_future(admission.wait())
    await asyncio.sleep(0)
    assert admission.queued == 2
    admission.release(clock())
    assert await first is True and not second.done()
    admission.release(clock())
    assert await second is True
    assert admission.queued == 0 and admission.limit.in_flight == admission.limit.current


async def test_a_waiter_past_its_wait_is_refused() -> None:
    """A request that waited queue_delay for a slot is refused, even when a slot frees just then."""
    admission, clock = full()
    late = asyncio.ensure_future(admission.wait())
    await asyncio.sleep(0)
    clock.advance(QUEUED.queue_delay)
    admission.release(clock())
    assert await late is False
    assert admission.limit.refused == 1 and admission.queued == 0


async def test_a_standing_queue_serves_the_newest_and_waits_only_the_target() -> None:
    """Once the queue has stood for queue_delay, a new request waits at most the target, and a freed slot goes to
    the newest waiter (adaptive LIFO): the oldest are the ones whose clients are about to give up."""
    admission, clock = full()
    oldest = asyncio.ensure_future(admission.wait())
    await asyncio.sleep(0)
    clock.advance(0.6 * QUEUED.queue_delay)
    middle = asyncio.ensure_future(admission.wait())
    await asyncio.sleep(0)
    clock.advance(0.6 * QUEUED.queue_delay)  # the queue has stood 1.2 x queue_delay: the oldest is past its wait
    assert admission.standing(clock())
    newest = asyncio.ensure_future(admission.wait())
    await asyncio.sleep(0)
    admission.release(clock())
    assert await oldest is False and await newest is True and not middle.done()
    clock.advance(0.1 * QUEUED.queue_delay)  # the middle one still has time: its wait began before the queue stood
    admission.release(clock())
    assert await middle is True


async def test_a_client_gone_while_queued_takes_no_slot() -> None:
    """A queued request whose client leaves is out of the queue, and the slot goes to the next waiter."""
    admission, clock = full()
    gone, next_one = asyncio.ensure_future(admission.wait()), asyncio.ensure_future(admission.wait())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    admission.release(clock())
    assert await next_one is True
    assert admission.queued == 0 and admission.limit.in_flight == admission.limit.current


async def test_a_request_over_the_limit_is_refused_before_the_app_runs() -> None:
    """With the one slot taken and no time to wait, the next request is answered 503 problem+json with Retry-After,
    and the app never sees it; probes and the management port pass the full limit."""
    from starlette.types import Message, Receive, Scope, Send

    from {{ cookiecutter.package_name }}.overload import AdmissionMiddleware

    cfg = LimitConfig(initial_limit=1, min_limit=1, max_limit=1, queue_delay=0.0, min_concurrency=1)
    release = asyncio.Event()
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limit = Admission(GradientLimit(cfg))
    middleware = AdmissionMiddleware(app, limit=limit, exempt=frozenset({"/live"}), management_port=9000)

    async def call(path: str, port: int = 8000) -> list[Message]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "path": path, "server": ("127.0.0.1", port), "headers": []}
        await middleware(scope, receive, send)
        return sent

    first = asyncio.create_task(call("/first"))
    await asyncio.sleep(0)
    refused = await call("/refused")
    assert refused[0]["status"] == 503
    headers = dict(refused[0]["headers"])
    assert headers[b"retry-after"] == b"1" and headers[b"content-type"] == b"application/problem+json"
    assert b'"status":503' in refused[1]["body"]
    probe, management = asyncio.create_task(call("/live")), asyncio.create_task(call("/metrics", port=9000))
    await asyncio.sleep(0)
    assert seen == ["/first", "/live", "/metrics"]  # the exempt ones ran at once, past the full limit
    release.set()
    await asyncio.gather(first, probe, management)
    assert seen == ["/first", "/live", "/metrics"]
