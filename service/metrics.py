"""Prometheus metrics, correct under several gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it), each worker writes its
samples to files in that directory and /metrics aggregates all workers (prometheus_client
multiprocess mode); gunicorn's child_exit hook marks dead workers. Without it (tests,
single process) the default registry is used.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self):
        self.http_requests = Counter(
            "credit_rules_http_requests_total", "HTTP requests answered", ["method", "endpoint", "status"])
        self.http_latency = Histogram(
            "credit_rules_http_request_duration_seconds", "Time to answer an HTTP request", ["endpoint"],
            buckets=LATENCY_BUCKETS)
        self.decisions = Counter(
            "credit_rules_decisions_total", "Decisions made and logged", ["ruleset", "version", "outcome"])
        self.evaluation_latency = Histogram(
            "credit_rules_evaluation_duration_seconds", "Validation and evaluation time of one decision", ["ruleset"],
            buckets=LATENCY_BUCKETS)
        self.rollout_decisions = Counter(
            "credit_rules_rollout_decisions_total", "Decisions under a champion/challenger rollout, by the arm that "
            "answered and whether the other arm evaluated (ok) or failed", ["ruleset", "mode", "arm", "shadow"])
        self.log_failures = Counter(
            "credit_rules_decision_log_failures_total", "Decisions refused because the log could not be written")

    def decision(self, ruleset: str, version: str, outcome: str, seconds: float) -> None:
        self.decisions.labels(ruleset, version, outcome).inc()
        self.evaluation_latency.labels(ruleset).observe(seconds)

    def rollout(self, ruleset: str, mode: str, arm: str, shadow_ok: bool) -> None:
        self.rollout_decisions.labels(ruleset, mode, arm, "ok" if shadow_ok else "failed").inc()

    def request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, endpoint, str(status)).inc()
        self.http_latency.labels(endpoint).observe(seconds)

    @staticmethod
    def exposition() -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        from prometheus_client import REGISTRY
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


_metrics: Metrics | None = None


def get_metrics() -> Metrics:
    """One set of metric objects per process (the client refuses duplicate registration)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics
