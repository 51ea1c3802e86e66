"""Central's settings: environment (``CS_CENTRAL_*``), a JSON file, or systemd credentials."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.release import public_key
from central.abuse import AbusePolicy
from central.security import Limits

SESSION_EXPIRY_S = 10
MQTT_KEEPALIVE_S = 5


class CentralSettings(BaseSettings):
    """Everything a central instance needs to run."""

    # hide_input_in_errors: a bad setting must not echo secrets back into the logs.
    model_config = SettingsConfigDict(
        env_prefix="CS_CENTRAL_", extra="forbid", hide_input_in_errors=True
    )

    instance_id: str = Field(
        default="central-1",
        pattern=r"^[A-Za-z0-9-]{1,32}$",
        description="MQTT client id; unique per instance so its session survives restarts.",
    )
    data_dir: Path = Field(
        default=Path("var/central"), description="Where the SQLite file and generated keys live."
    )
    database: Literal["sqlite", "postgres"] = Field(
        default="sqlite", description="Storage backend."
    )
    sqlite_path: Path | None = Field(
        default=None, description="SQLite file; defaults to <data_dir>/central.db."
    )
    postgres_dsn: SecretStr | None = Field(
        default=None, description="postgresql://user:pass@host/db when database=postgres."
    )
    postgres_pool: int = Field(
        default=10, ge=1, le=100, description="PostgreSQL connections this instance may hold."
    )
    mqtt_host: str = Field(default="127.0.0.1", description="Broker host.")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="Broker port.")
    mqtt_username: str | None = Field(default=None, description="Broker user for central.")
    mqtt_password: SecretStr | None = Field(default=None, description="Broker password.")
    mqtt_tls_ca: Path | None = Field(
        default=None, description="Connect to the broker over TLS, trusting this CA (PEM)."
    )
    broker_control: bool = Field(
        default=False,
        description="Administer the fleet broker's accounts (Mosquitto's dynamic security"
        " plugin) over $CONTROL: enrol, re-key, retire, shelf changes. Off for a"
        " development broker, which has no plugin.",
    )
    broker_auth_dir: Path | None = Field(
        default=None,
        description="Where the broker's dynamic security file lives (the instance on the"
        " broker's host): written from the database only if missing, to seed a new broker.",
    )
    broker_public_host: str = Field(
        default="localhost", description="The broker host name kiosks connect to."
    )
    broker_public_port: int = Field(
        default=8883, ge=1, le=65535, description="The broker port kiosks connect to."
    )
    broker_ca_file: Path | None = Field(
        default=None, description="The project CA (PEM) put into kiosk bundles; unset: no TLS."
    )
    admin_tls_cert: Path | None = Field(
        default=None, description="Serve the admin API (and kiosk claims) over HTTPS: cert."
    )
    admin_tls_key: Path | None = Field(default=None, description="Its private key.")
    admin_host: str = Field(default="127.0.0.1", description="Admin HTTP API bind address.")
    admin_port: int = Field(default=8480, ge=0, le=65535, description="Admin HTTP API port.")
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for the admin API; generated if unset."
    )
    keys_file: Path | None = Field(
        default=None, description="JSON key ring; defaults to <data_dir>/keys.json."
    )
    create_keys: bool = Field(
        default=True, description="Create a key ring and admin token if none exist (dev)."
    )
    batch_max: int = Field(
        default=256, ge=1, le=10_000, description="Most scans decided in one transaction."
    )
    pass_ttl_s: int = Field(
        default=900, ge=60, le=86_400, description="Default lifetime of a member pass."
    )
    # How fast a dead instance lets go of its share of the scans. Mosquitto 2.0 hands a
    # shared subscription's messages round-robin to every member session, connected or
    # not, so a killed instance's session keeps taking its share until it expires.
    # Unacknowledged scans in an expired session are not lost: kiosks re-send every
    # unanswered scan every 5 s, and idempotency makes a repeat a read.
    session_expiry_s: int = Field(
        default=SESSION_EXPIRY_S,
        ge=0,
        le=86_400,
        description="How long the broker keeps a vanished instance's session (and its share"
        " of the scans); long enough for a systemd restart to resume it.",
    )
    mqtt_keepalive_s: int = Field(
        default=MQTT_KEEPALIVE_S,
        ge=2,
        le=600,
        description="MQTT keep-alive: the broker declares a silent instance gone after 1.5x"
        " this (a crashed host; a killed process is noticed at once).",
    )
    key_grace_s: int = Field(
        default=86_400,
        ge=0,
        description="How long codes signed with a key retired by a rotation still verify.",
    )
    rate_kiosk_per_min: float = Field(
        default=60.0, ge=0, description="Scans a kiosk may send per minute, sustained (0: off)."
    )
    rate_kiosk_burst: int = Field(
        default=20, ge=1, description="Scans a kiosk may send at once before the rate applies."
    )
    rate_member_per_min: float = Field(
        default=20.0, ge=0, description="Scans per minute for one member's pass/session (0: off)."
    )
    rate_member_burst: int = Field(
        default=10, ge=1, description="Scans one member may make at once before the rate applies."
    )
    block_after_failures: int = Field(
        default=20,
        ge=0,
        description="Refused scans (forged, reused, revoked...) that block a kiosk (0: off).",
    )
    block_window_s: int = Field(
        default=60, ge=1, description="Window in which those refused scans are counted."
    )
    block_for_s: int = Field(
        default=120, ge=1, description="The longest automatic cool-down of a kiosk (the cap)."
    )
    block_first_s: int = Field(
        default=5, ge=1, description="The first cool-down; each next one in a run doubles."
    )
    block_forget_s: int = Field(
        default=600, ge=1, description="Quiet seconds after which cool-downs start short again."
    )

    breaker_window_s: float = Field(
        default=600.0, gt=0, le=86_400, description="The circuit breaker's look-back window."
    )
    breaker_error_rate: float = Field(
        default=0.05, gt=0, le=1, description="Error share of code scans that trips the breaker."
    )
    breaker_min_scans: int = Field(
        default=50, ge=1, description="Code scans in the window before the error rate counts."
    )
    breaker_security_alerts: int = Field(
        default=3,
        ge=1,
        description="Security alerts in the window that trip the breaker (one per kiosk).",
    )
    breaker_min_kiosks: int = Field(
        default=3,
        ge=1,
        description="Kiosks errors must come from to trip it: each counts up to 1/this share.",
    )
    breaker_every_s: float = Field(
        default=5.0, gt=0, le=600, description="How often each instance evaluates the breaker."
    )
    hold_sweep_every_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How often each instance passes run-out ready holds on (docs/circulation.md).",
    )
    # --- the consumer's fairness and bad-traffic defences (central/consumer.py, abuse.py) ---
    kiosk_backlog: int = Field(
        default=2000,
        ge=1,
        description="Messages one kiosk may have waiting; the excess is shed and counted"
        " (its outbox sends them again).",
    )
    kiosk_share: int = Field(
        default=32, ge=1, description="Most places one kiosk's messages take in one batch."
    )
    garbage_window_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Window over which a kiosk's dropped messages are counted and audited"
        " (one scan.dropped row per kiosk per window).",
    )
    garbage_block_after: int = Field(
        default=50,
        ge=0,
        description="Malformed, retained or poisoned messages from one kiosk in one window"
        " that block it for block_for_s (0: never).",
    )
    garbage_answers: int = Field(
        default=20,
        ge=0,
        description="Refusals answered from memory per kiosk per window; the rest dropped.",
    )
    ready_max_stall_s: float = Field(
        default=10.0,
        gt=0,
        description="/ready says not ready when scans wait and no batch finished this long.",
    )

    ready_max_queue: int = Field(
        default=10_000, ge=1, description="Scans waiting above which /ready says not ready."
    )
    ready_db_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="How long /ready waits for the database to answer."
    )
    release_keys: list[str] = Field(
        default=[],
        max_length=8,
        description="Release public keys (base64 Ed25519): a release they do not verify is "
        "refused at publish. Kiosks check again with their own list.",
    )
    public_url: str | None = Field(
        default=None,
        description="The HTTPS address kiosks download releases from (default: the admin "
        "API's own address).",
    )
    update_every_s: float = Field(
        default=5.0, gt=0, le=600, description="How often each instance advances rollouts."
    )
    update_resend_s: float = Field(
        default=30.0, gt=0, le=3600, description="Repeat an unanswered offer this often."
    )

    members_app: bool = Field(
        default=False, description="Serve the members' app (its own port, auth and cookies)."
    )
    members_host: str = Field(default="127.0.0.1", description="Members' app bind address.")
    members_port: int = Field(default=8443, ge=0, le=65535, description="Members' app port.")
    members_tls_cert: Path | None = Field(
        default=None, description="Serve the members' app over HTTPS: cert (PEM)."
    )
    members_tls_key: Path | None = Field(default=None, description="Its private key.")
    members_origin: str = Field(
        default="https://localhost:8443",
        description="The address members open (scheme://host[:port]); WebAuthn's origin and"
        " relying party (its host), and the base of e-mailed sign-in links.",
    )
    console_origin: str | None = Field(
        default=None,
        description="The address staff open the console at (scheme://host[:port]; the console"
        " is under /staff): WebAuthn's origin and the base of staff sign-in links. Default:"
        " central's own admin address.",
    )
    smtp_host: str = Field(
        default="127.0.0.1", description="SMTP server for sign-in links and reminders."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Its port.")
    mail_from: str = Field(
        default="library@localhost", description="The From address of sign-in e-mails."
    )
    reminder_every_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How often each instance runs a reminder round (with the members' app on:"
        " reminders link to its pages). What is sent is set by cs-admin reminders settings.",
    )

    @field_validator("release_keys")
    @classmethod
    def _keys_parse(cls, keys: list[str]) -> list[str]:
        for key in keys:
            public_key(key)
        return keys

    @property
    def download_base(self) -> str:
        """Where kiosks fetch artifacts from, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.admin_tls_cert else "http"
        return f"{scheme}://{self.admin_host}:{self.admin_port}"

    @property
    def console_url(self) -> str:
        """The staff console's origin, without a trailing slash."""
        if self.console_origin:
            return self.console_origin.rstrip("/")
        scheme = "https" if self.admin_tls_cert else "http"
        return f"{scheme}://{self.admin_host}:{self.admin_port}"

    @property
    def sqlite_file(self) -> Path:
        """The SQLite database file in use."""
        return self.sqlite_path or self.data_dir / "central.db"

    @property
    def keys_path(self) -> Path:
        """The key ring file in use."""
        return self.keys_file or self.data_dir / "keys.json"

    def abuse(self) -> AbusePolicy:
        """How the consumer counts, answers and blocks a kiosk's bad traffic."""
        return AbusePolicy(
            window_s=self.garbage_window_s,
            block_after=self.garbage_block_after,
            block_for=timedelta(seconds=self.block_for_s),
            answers_per_window=self.garbage_answers,
        )

    def limits(self) -> Limits:
        """The rate limits and automatic block these settings ask for."""
        return Limits(
            kiosk_per_min=self.rate_kiosk_per_min,
            kiosk_burst=self.rate_kiosk_burst,
            member_per_min=self.rate_member_per_min,
            member_burst=self.rate_member_burst,
            block_after=self.block_after_failures,
            block_window=timedelta(seconds=self.block_window_s),
            block_for=timedelta(seconds=self.block_for_s),
            block_first=timedelta(seconds=self.block_first_s),
            block_forget=timedelta(seconds=self.block_forget_s),
        )


def load_settings(**overrides: Any) -> CentralSettings:
    """Settings from the environment, with systemd credentials if the unit passes any."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds:
        return CentralSettings(_secrets_dir=creds, **overrides)
    return CentralSettings(**overrides)
