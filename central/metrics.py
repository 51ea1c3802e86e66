"""Prometheus metrics for central, under the names the rollout plan and its alerts use."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from broker.messages import Reason

# Scan-to-verdict inside central is milliseconds; the seed's alert fires at 500 ms.
_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """One registry per central instance (tests run several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scans = Counter(
            "qr_scans", "Scans decided (redeliveries not counted).", registry=self.registry
        )
        self.success = Counter(
            "qr_scans_success", "Scans accepted, by reason.", ["reason"], registry=self.registry
        )
        self.failed = Counter(
            "qr_scans_failed", "Scans refused, by reason.", ["reason"], registry=self.registry
        )
        self.replayed = Counter(
            "qr_scans_replayed", "Redelivered scans answered again.", registry=self.registry
        )
        self.dropped = Counter(
            "qr_scans_dropped",
            "Messages too broken to answer, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.validation_latency = Histogram(
            "qr_validation_latency_seconds",
            "Scan received to verdict published.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.checkout_duration = Histogram(
            "qr_checkout_duration_seconds",
            "Database transaction time per batch of scans.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.kiosks_connected = Gauge(
            "qr_kiosks_connected",
            "Kiosks whose retained status says online.",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "qr_queue_depth", "Scans received and not yet decided.", registry=self.registry
        )
        self.security_alerts = Counter(
            "qr_security_alerts", "Security alerts raised.", ["kind"], registry=self.registry
        )
        self.conflicts = Counter(
            "qr_db_conflicts", "Writes the constraints refused.", registry=self.registry
        )
        self.overdue_items = Gauge(
            "qr_overdue_items", "Items checked out past their due time.", registry=self.registry
        )

    def verdict(self, reason: Reason, *, replayed: bool, seconds: float) -> None:
        """Count one verdict sent."""
        self.validation_latency.observe(seconds)
        if replayed:
            self.replayed.inc()
            return
        self.scans.inc()
        (self.success if reason.accepted else self.failed).labels(reason=reason.value).inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
