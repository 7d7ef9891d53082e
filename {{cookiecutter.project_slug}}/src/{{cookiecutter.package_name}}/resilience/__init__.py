"""Resilience for calls to dependencies: breaker, retry with a budget, bulkhead and the request deadline.

Importable alone: a guard takes its settings, its client's error classifier and its observer as arguments.
"""

from .breaker import Breaker, BreakerConfig, BreakerOpen, BreakerState
from .bulkhead import Bulkhead, BulkheadFull
from .deadline import DeadlineExceeded, Deadlines
from .errors import Classifier, DependencyUnavailable
from .guard import Guard, GuardObserver, Guards, GuardSettings, Listener
from .retry import RetryBudget, retrying

__all__ = [
    "Breaker",
    "BreakerConfig",
    "BreakerOpen",
    "BreakerState",
    "Bulkhead",
    "BulkheadFull",
    "Classifier",
    "DeadlineExceeded",
    "Deadlines",
    "DependencyUnavailable",
    "Guard",
    "GuardObserver",
    "GuardSettings",
    "Guards",
    "Listener",
    "RetryBudget",
    "retrying",
]
