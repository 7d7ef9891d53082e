"""The jobs' settings group, ``JOBS_``: the worker's concurrency, time limits, lease and retries."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from ...settings import Group, PositiveInt, Seconds, group_config


class JobsSettings(Group):
    model_config = group_config("JOBS_")
    concurrency: Annotated[int, Field(ge=2)] = 10  # jobs one worker runs at once
    job_timeout_seconds: Seconds = 60.0  # one attempt's deadline, its dependency calls included
    # After SIGTERM: running jobs get this long to finish, then are released for another worker.
    shutdown_seconds: Seconds = 20.0
    # A job whose worker stopped beating for this long (SIGKILL, a lost node) is picked again.
    lease_seconds: Seconds = 30.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    retry_initial_seconds: Seconds = 1.0  # the backoff's cap before the second attempt; it doubles each time
    retry_max_seconds: Seconds = 300.0
    poll_seconds: Seconds = 5.0  # how often an idle worker looks, besides being woken by each new job
    restart_seconds: Seconds = 1.0  # how long the worker waits before starting over after losing PostgreSQL
    backlog_warn_seconds: Seconds = 300.0  # /health/detailed warns once the oldest ready job waits this long
    metrics_seconds: Seconds = 5.0  # how often the worker counts the queue for its gauges
    stall_seconds: Seconds = 30.0  # the worker's liveness fails once its event loop is this late
    port: Annotated[int, Field(ge=1, le=65535)] = 8081  # the worker's /metrics and /health/live
    local_workers: PositiveInt = 2  # on the embedded SQLite: jobs the service runs at once in-process

    @model_validator(mode="after")
    def _backoff_fits(self) -> Self:
        if self.retry_initial_seconds > self.retry_max_seconds:
            raise ValueError("JOBS_RETRY_INITIAL_SECONDS must not exceed JOBS_RETRY_MAX_SECONDS")
        if self.lease_seconds < 2:
            raise ValueError("JOBS_LEASE_SECONDS must be at least 2 (the worker beats at half of it)")
        return self
