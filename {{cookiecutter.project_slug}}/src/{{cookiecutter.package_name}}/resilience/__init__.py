"""Resilience for calls to dependencies: breaker, retry with a budget, bulkhead and the request deadline."""

from .breaker import Breaker, BreakerConfig, BreakerOpen, BreakerState
from .bulkhead import Bulkhead, BulkheadFull
from .deadline import DeadlineExceeded, DeadlineMiddleware, Deadlines
from .dependency import Dependency
from .errors import is_failure, is_transient
from .retry import RetryBudget, retrying

__all__ = [
    "Breaker",
    "BreakerConfig",
    "BreakerOpen",
    "BreakerState",
    "Bulkhead",
    "BulkheadFull",
    "DeadlineExceeded",
    "DeadlineMiddleware",
    "Deadlines",
    "Dependency",
    "RetryBudget",
    "is_failure",
    "is_transient",
    "retrying",
]
