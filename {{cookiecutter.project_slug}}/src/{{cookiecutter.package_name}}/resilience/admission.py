"""An adaptive concurrency limit: how many requests this process serves at once, following measured latency.

The gradient controller of Envoy's adaptive concurrency filter (envoyproxy.io, "Adaptive Concurrency", the
``gradient_controller``), itself after Netflix's concurrency-limits (Gradient2). Every ``window_seconds`` the
median latency of the requests that finished in it (the sample RTT) is compared with the latency of a nearly
idle process (the minimum RTT):

    gradient  = clamp(min_rtt * (1 + buffer) / sample_rtt, 0.5, 2.0)
    new_limit = gradient * limit + sqrt(gradient * limit)          (the square root is headroom)

so the limit shrinks while requests queue (in the event loop, the pool, the database) and grows back while they
don't: it settles near the fewest requests in flight that keep the worker busy, so that each is served fast.

What arrives over the limit waits for a slot (``Admission``), bounded by its sojourn time rather than the queue's
length, as in CoDel for servers (Facebook, "Fail at Scale", 2015): at most ``queue_delay``, or 5 ms once the queue
has stood that long, and newest first while it stands (adaptive LIFO). So a short burst, or a closed loop of a few
dozen clients, queues for a few milliseconds and is served; a standing overload is refused within 5 ms, and what
is admitted is what its client still waits for. Measured first with a FIFO queue refused only at its door: under
3x offered load from 2,000 clients, the admitted requests had waited 1.6 s at the 90th percentile, and most of
them were served after their clients had given up.

The minimum RTT is measured from the first ``min_rtt_requests`` requests, at ``initial_limit``: a pod that starts
under load is not refused while it measures (pinned to 3 at start, a new pod of a rolling deploy refused most of
its first requests). When the limit has sat on its floor, the sign that the baseline itself moved (a dependency
that became slower), it is measured again as Envoy does, pinned to ``min_concurrency`` until ``min_rtt_requests``
requests have finished. Envoy also pins it every minute; here a window in which
no more than ``min_concurrency`` requests were ever in flight measures it for free, and no steady traffic is
refused for the sake of a measurement. As in Gradient2, the limit does not grow while fewer than half of it are
in use: light traffic says nothing about capacity.

Written here because no maintained asyncio or ASGI implementation exists (the closest, aioresilience, was a few
weeks of commits in 2025); the whole algorithm is this module, time comes from ``clock`` so tests never wait,
and nothing here knows about HTTP: ``try_acquire`` and ``release`` are all a caller needs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

_MIN_SAMPLES = 5  # a window with fewer is extended: one slow request alone would halve the limit


@dataclass(frozen=True, slots=True)
class LimitConfig:
    initial_limit: int = 50
    min_limit: int = 3
    max_limit: int = 1000
    queue_delay: float = 0.1  # the longest wait for a slot, and how long a queue stands before it is overload
    target: float = 0.005  # the longest wait for a slot while the queue stands (CoDel's target)
    window_seconds: float = 0.1
    buffer: float = 0.25  # latency this far over the minimum RTT is not queueing (Envoy's default)
    min_concurrency: int = 3  # the limit while the minimum RTT is measured
    min_rtt_requests: int = 25


class GradientLimit:
    def __init__(self, cfg: LimitConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.limit = float(min(max(cfg.initial_limit, cfg.min_limit), cfg.max_limit))
        self.in_flight = 0
        self.refused = 0  # ever: readers take differences
        self.min_rtt: float | None = None
        self.sample_rtt: float | None = None
        self._samples: list[float] = []
        self._drops = 0  # requests of this window refused further in
        self._peak = 0  # the most in flight during the window
        now = clock()
        self._window_ends = now + cfg.window_seconds
        self._measuring_since: float | None = now  # measuring the minimum RTT from the first request on
        self._pinned = False  # to min_concurrency while measuring: after the limit floored, not at start

    @property
    def current(self) -> int:
        """The number of requests admitted at once right now."""
        return self.cfg.min_concurrency if self._pinned else int(self.limit)

    @property
    def queue_delay(self) -> float:
        """How much longer than the minimum RTT the last window's median request took."""
        if self.min_rtt is None or self.sample_rtt is None:
            return 0.0
        return max(0.0, self.sample_rtt - self.min_rtt)

    def try_acquire(self) -> bool:
        """Admit one request (then ``release`` it with the time it was admitted) if the limit allows it now."""
        if self.in_flight >= self.current:
            return False
        self.in_flight += 1
        if self.in_flight > self._peak:
            self._peak = self.in_flight
        return True

    def release(self, admitted_at: float, *, dropped: bool = False) -> None:
        """One admitted request ended; ``admitted_at`` is the clock's reading when it was admitted. ``dropped``:
        it was refused further in (a full bulkhead or pool, an open breaker, a passed deadline), whose speed says
        nothing of latency but that more was admitted than could be served: the next window halves the limit."""
        self.in_flight -= 1
        now = self.clock()
        since = self._measuring_since
        if since is not None:
            if admitted_at >= since and not dropped:  # admitted before the measurement: it queued behind the old limit
                self._samples.append(now - admitted_at)
                if len(self._samples) >= self.cfg.min_rtt_requests:
                    self._end_measuring(now)
            return
        if dropped:
            self._drops += 1
        else:
            self._samples.append(now - admitted_at)
        if now >= self._window_ends and (self._drops or len(self._samples) >= _MIN_SAMPLES):
            self._update(now)

    def _end_measuring(self, now: float) -> None:
        self.min_rtt = _median(self._samples)
        self._samples.clear()
        self._measuring_since = None
        self._pinned = False
        self._peak = self.in_flight
        self._window_ends = now + self.cfg.window_seconds

    def _update(self, now: float) -> None:
        cfg = self.cfg
        assert self.min_rtt is not None  # noqa: S101 - set when the first measurement ended
        if self._drops:
            new = 0.5 * self.limit
        elif (sample := _median(self._samples)) is not None:
            self.sample_rtt = sample
            if self._peak <= cfg.min_concurrency:  # nearly idle all window long: a minimum RTT, measured for free
                self.min_rtt = sample
            target = self.min_rtt * (1 + cfg.buffer)
            gradient = min(2.0, max(0.5, target / sample)) if sample > 0 else 2.0
            new = self._next(gradient)
        else:  # pragma: no cover - called with drops or samples only
            return
        floored = new <= cfg.min_limit
        self.limit = min(float(cfg.max_limit), max(float(cfg.min_limit), new))
        self._samples.clear()
        self._drops = 0
        self._peak = self.in_flight
        self._window_ends = now + cfg.window_seconds
        if floored:
            self._measuring_since = now
            self._pinned = True

    def _next(self, gradient: float) -> float:
        if gradient >= 1.0 and self._peak < self.limit / 2:
            return self.limit  # app-limited: no evidence that more would be served well
        new = gradient * self.limit
        return new + math.sqrt(new)


class Admission:
    """The limit with a bounded wait for a slot: CoDel's sojourn rule and adaptive LIFO, as Facebook's servers do.

    A request over the limit waits for a slot at most ``queue_delay``, or only ``target`` once the queue has not
    been empty for ``queue_delay`` (a standing queue: overload, not a burst); past its wait it is refused. While
    the queue stands, a freed slot goes to the newest waiter rather than the oldest: its client has the most
    patience left, where the oldest would be served just as it gave up. So no admitted request waited long, and
    under overload the worker serves the requests that can still succeed.
    """

    def __init__(self, limit: GradientLimit) -> None:
        self.limit = limit
        self.clock = limit.clock
        self._waiters: deque[tuple[float, asyncio.Future[bool]]] = deque()  # (wait ends at, decision)
        self._last_empty = self.clock()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def oldest_wait(self) -> float:
        """How long the queue has stood: zero when it is empty."""
        return self.clock() - self._last_empty if self._waiters else 0.0

    def standing(self, now: float) -> bool:
        return bool(self._waiters) and now - self._last_empty >= self.limit.cfg.queue_delay

    async def wait(self) -> bool:
        """Wait for a slot (after ``limit.try_acquire()`` said no); False: refused, it did not come in time."""
        now = self.clock()
        if not self._waiters:
            self._last_empty = now
        patience = self.limit.cfg.target if self.standing(now) else self.limit.cfg.queue_delay
        decision = asyncio.get_running_loop().create_future()
        entry = (now + patience, decision)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(patience):
                admitted: bool = await decision
        except TimeoutError:
            admitted = decision.result() if decision.done() and not decision.cancelled() else False
            if not decision.done():
                decision.cancel()
                self._waiters.remove(entry)
        except BaseException:
            if decision.done() and not decision.cancelled() and decision.result():
                self.release(self.clock())  # the slot came as the client left: pass it on
            elif not decision.done():
                decision.cancel()
                self._waiters.remove(entry)
            raise
        if not admitted:
            self.limit.refused += 1
        return admitted

    def release(self, admitted_at: float, *, dropped: bool = False) -> None:
        """An admitted request ended (``GradientLimit.release``): its slot goes to a waiter, if the limit allows."""
        limit = self.limit
        limit.release(admitted_at, dropped=dropped)
        waiters = self._waiters
        if not waiters:
            return
        now = self.clock()
        while waiters and waiters[0][0] <= now:  # the oldest, past their wait: refused
            _, decision = waiters.popleft()
            if not decision.done():
                decision.set_result(False)
        newest_first = self.standing(now)
        while waiters and limit.in_flight < limit.current:
            _, decision = waiters.pop() if newest_first else waiters.popleft()
            if not decision.done():
                limit.try_acquire()
                decision.set_result(True)
        if not waiters:
            self._last_empty = now


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
