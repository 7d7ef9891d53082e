"""Resilience for calls to dependencies: breaker, retry with a budget, bulkhead and the request deadline."""

from .breaker import Breaker, BreakerConfig, BreakerOpen, BreakerState
from .bulkhead import Bulkhead, BulkheadFull
from .deadline import DeadlineExceeded, Deadlines
from .dependency import Dependency, listen
from .errors import driver_errors, is_failure, is_transient, register_driver_errors
from .retry import RetryBudget, retrying

__all__ = [
    "Breaker",
    "BreakerConfig",
    "BreakerOpen",
    "BreakerState",
    "Bulkhead",
    "BulkheadFull",
    "DeadlineExceeded",
    "Deadlines",
    "Dependency",
    "RetryBudget",
    "driver_errors",
    "is_failure",
    "is_transient",
    "listen",
    "register_driver_errors",
    "retrying",
]
