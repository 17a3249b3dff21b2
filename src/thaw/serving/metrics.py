"""Prometheus metrics, one registry per app (no process-global collectors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServeMetrics:
    """Request counts and latencies by route, served items by source, ingestion counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "thaw_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "thaw_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.served = Counter(
            "thaw_recommended_items", "Items served in recommendation lists", ["source"], registry=self.registry
        )
        self.events = Counter(
            "thaw_events", "Events received", ["result"], registry=self.registry
        )
        self.items = Gauge("thaw_catalogue_items", "Live items in the catalogue", registry=self.registry)
        self.model = Gauge(
            "thaw_model_info", "The live model version (value 1)", ["version"], registry=self.registry
        )
        self.trainings = Counter(
            "thaw_trainings", "Background trainings by outcome", ["status"], registry=self.registry
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
