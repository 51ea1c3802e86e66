"""Prometheus metrics for central, under the names the rollout plan and its alerts use."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from broker.messages import KioskState, KioskStatus, Reason

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
        self.breaker_tripped = Gauge(
            "qr_breaker_tripped",
            "1 while the circuit breaker holds checkout off.",
            registry=self.registry,
        )
        self.breaker_trips = Counter(
            "qr_breaker_trips", "Times this instance tripped the breaker.", registry=self.registry
        )
        self.rollout_mode = Gauge(
            "qr_rollout_mode",
            "1 for the rollout flag's mode now, 0 for the others.",
            ["mode"],
            registry=self.registry,
        )
        self.rollout_percent = Gauge(
            "qr_rollout_percent",
            "Members admitted in percentage mode.",
            registry=self.registry,
        )
        self.kiosk_disconnects = Counter(
            "qr_kiosk_disconnects", "Kiosks seen going offline.", registry=self.registry
        )
        # Per kiosk, from each kiosk's retained status. One label, and only enrolled,
        # unretired kiosks get series (see fleet()), so cardinality is the fleet's size.
        self.kiosk_online = Gauge(
            "qr_kiosk_online",
            "1 if the kiosk's status says online.",
            ["kiosk"],
            registry=self.registry,
        )
        self.kiosk_camera_fps = Gauge(
            "qr_kiosk_camera_fps",
            "Frames the kiosk's camera delivers a second.",
            ["kiosk"],
            registry=self.registry,
        )
        self.kiosk_decode = Gauge(
            "qr_kiosk_decode_median_seconds",
            "Median decode time of the kiosk's recent frames.",
            ["kiosk"],
            registry=self.registry,
        )
        self.kiosk_outbox = Gauge(
            "qr_kiosk_outbox_depth",
            "Scans the kiosk holds unanswered.",
            ["kiosk"],
            registry=self.registry,
        )
        self.kiosk_camera_ok = Gauge(
            "qr_kiosk_camera_ok",
            "1 if the kiosk's camera delivers frames.",
            ["kiosk"],
            registry=self.registry,
        )
        self.overdue_items = Gauge(
            "qr_overdue_items", "Items checked out past their due time.", registry=self.registry
        )
        self.reminders = Counter(
            "qr_reminders",
            "Reminder mail attempts by kind and outcome (sent, failed, bounced, unreachable,"
            " cancelled).",
            ["kind", "outcome"],
            registry=self.registry,
        )

    def flag(self, mode: str, percent: int, *, tripped: bool) -> None:
        """Show the rollout flag and breaker as read from the database."""
        for name in ("off", "allow-list", "percentage", "on"):
            self.rollout_mode.labels(mode=name).set(1 if name == mode else 0)
        self.rollout_percent.set(percent)
        self.breaker_tripped.set(1 if tripped else 0)

    def verdict(self, reason: Reason, *, replayed: bool, seconds: float) -> None:
        """Count one verdict sent."""
        self.validation_latency.observe(seconds)
        if replayed:
            self.replayed.inc()
            return
        self.scans.inc()
        (self.success if reason.accepted else self.failed).labels(reason=reason.value).inc()

    def fleet(self, presence: Mapping[str, KioskStatus], enrolled: Collection[str]) -> None:
        """Set the per-kiosk gauges from presence, at scrape time.

        Every series is rebuilt, so a retired or deleted kiosk's series vanish with it and a
        status from a kiosk that is not enrolled never makes one. Health figures are shown
        for online kiosks only: an offline kiosk's last will carries figures from when it
        connected, which would read as current.
        """
        health = (self.kiosk_camera_fps, self.kiosk_decode, self.kiosk_outbox, self.kiosk_camera_ok)
        for gauge in (self.kiosk_online, *health):
            gauge.clear()
        for kiosk_id in enrolled:
            status = presence.get(kiosk_id)
            online = status is not None and status.state is KioskState.ONLINE
            self.kiosk_online.labels(kiosk=kiosk_id).set(1 if online else 0)
            if status is None or not online:
                continue
            self.kiosk_outbox.labels(kiosk=kiosk_id).set(status.outbox_depth)
            self.kiosk_camera_ok.labels(kiosk=kiosk_id).set(1 if status.camera_ok else 0)
            if status.camera_fps is not None:
                self.kiosk_camera_fps.labels(kiosk=kiosk_id).set(status.camera_fps)
            if status.decode_ms is not None:
                self.kiosk_decode.labels(kiosk=kiosk_id).set(status.decode_ms / 1000)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
