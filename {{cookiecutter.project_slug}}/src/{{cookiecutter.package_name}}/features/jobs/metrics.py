"""The jobs' metrics: the queue's depth and age (the worker samples them), and each job's outcome and duration."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
OUTCOMES = ("succeeded", "retried", "failed", "released")


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.depth = Gauge(
            "jobs_queue_depth", "Jobs in the queue by state.", ["state"], registry=registry, multiprocess_mode="max"
        )
        self.oldest = Gauge(
            "jobs_oldest_queued_age_seconds",
            "How long the oldest job ready to run has waited.",
            registry=registry,
            multiprocess_mode="max",
        )
        self.processed = Counter(
            "jobs_processed", "Job runs by type and outcome.", ["job_type", "outcome"], registry=registry
        )
        self.duration = Histogram(
            "jobs_duration_seconds",
            "How long a job run took.",
            ["job_type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def ran(self, job_type: str, outcome: str, seconds: float) -> None:
        self.processed.labels(job_type, outcome).inc()
        self.duration.labels(job_type).observe(seconds)
