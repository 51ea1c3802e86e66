"""Reminder mail in central: a periodic round that claims what is due and sends it by SMTP.

Each round (every ``every_s``, or on ``cs-admin reminders run-now``) loads the facts,
lets :func:`central.reminders.compose` say what should go, claims each mail in its own
transaction (:meth:`ReminderRows.claim`: nothing twice, nothing for an item already
back), then sends every queued mail whose attempt is due. A 4xx answer or an unreachable
server is retried with backoff; a 5xx answer is a bounce. Every attempt is logged.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from central.circulation import renewal_refusal
from central.clock import Clock
from central.metrics import Metrics
from central.reminders import (
    Facts,
    Kind,
    Links,
    Reminder,
    ReminderSettings,
    claims_of,
    compose,
    digest_time,
    local_day,
    render,
    unclaimed,
)
from central.services.refusals import Refusal, RefusedError
from central.storage.base import AuditEntry
from central.storage.reminders import Delivery, OpenLoan, ReminderRows

log = logging.getLogger(__name__)

# Retries after a temporary failure: 1, 2, 4 … minutes, at most an hour apart.
RETRY_FIRST_S = 60.0
RETRY_MAX_S = 3600.0
MAX_ATTEMPTS = 8
# How long one attempt holds a mail before another central may try it (a crash mid-send).
LEASE_S = 120.0
# How long the delivery log and spent claims are kept: staff read three months of mail.
KEEP_DAYS = 90
STATUSES = ("queued", "sent", "failed", "bounced", "no_address", "cancelled")


class SendsMail(Protocol):
    """What sends one message (``central.web.mail.Mailer``)."""

    async def send(
        self, to: str, subject: str, body: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send it, or raise the SMTP client's error."""


def renewable(out: OpenLoan, now: datetime) -> bool:
    """Whether a mail about this loan carries a renew link: the walk-up's own rule says so."""
    refusal = renewal_refusal(
        due_at=out.loan.due_at,
        renewals=out.renewals,
        terms=out.terms,
        others_waiting=out.others_waiting,
        now=now,
    )
    return refusal is None


def retry_delay_s(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` tries (doubling, capped)."""
    return min(RETRY_FIRST_S * float(2 ** max(attempts - 1, 0)), RETRY_MAX_S)


def temporary(exc: BaseException) -> bool:
    """Whether a send failure is worth another try (4xx, or the server out of reach)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return all(400 <= code < 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return False  # e.g. an address the server cannot take (no SMTPUTF8): never will
    # Refused or dropped connections, timeouts, a server that hung up: try again later.
    return isinstance(exc, OSError | smtplib.SMTPException)


def unreachable(exc: BaseException) -> bool:
    """Whether the server did not answer at all (smtplib's errors are OSErrors too)."""
    answered = (
        smtplib.SMTPResponseException,
        smtplib.SMTPRecipientsRefused,
        smtplib.SMTPNotSupportedError,
    )
    return isinstance(exc, OSError) and not isinstance(exc, answered)


class SettingsBody(BaseModel):
    """Reminder settings as the admin API shows and takes them."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="Whether any reminder mail goes out.")
    digest_hour: int = Field(ge=0, le=23, description="Local hour the daily mails go from.")
    timezone: str = Field(max_length=64, description="The library's IANA time zone.")
    due_soon_days: int = Field(ge=0, le=30, description="Days ahead a loan counts as due soon.")
    overdue_days: list[int] = Field(
        max_length=10, description="Days late on which an overdue mail goes (e.g. 1, 7, 14)."
    )


class SettingsPatch(BaseModel):
    """A change to some of the settings."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = Field(default=None, description="Send reminder mail at all.")
    digest_hour: int | None = Field(default=None, ge=0, le=23, description="Local hour.")
    timezone: str | None = Field(default=None, max_length=64, description="IANA time zone.")
    due_soon_days: int | None = Field(default=None, ge=0, le=30, description="Window, days.")
    overdue_days: list[int] | None = Field(
        default=None, max_length=10, description="Escalation days."
    )


class SettingsShown(SettingsBody):
    """The settings and who changed them last."""

    changed_by: str = Field(description="Who changed them last.")
    changed_at: datetime = Field(description="When.")


class DeliveryShown(BaseModel):
    """One row of the delivery log."""

    model_config = ConfigDict(extra="forbid")

    delivery_id: int = Field(description="The log row.")
    member_id: str = Field(description="Who it was for.")
    kind: str = Field(description="digest, hold_ready or overdue.")
    step: int | None = Field(description="The overdue escalation day, for an overdue mail.")
    items: list[str] = Field(description="The items it names.")
    status: str = Field(description="queued, sent, failed, bounced, no_address or cancelled.")
    attempts: int = Field(description="Tries so far.")
    last_error: str | None = Field(description="The last failure, as the server said it.")
    created_at: datetime = Field(description="When it was claimed.")
    sent_at: datetime | None = Field(description="When the server accepted it.")


class RoundShown(BaseModel):
    """What one round did."""

    model_config = ConfigDict(extra="forbid")

    claimed: int = Field(description="Mails claimed this round.")
    sent: int = Field(description="Mails the SMTP server accepted.")
    failed: int = Field(description="Attempts that failed (to be retried, or bounced).")


class PruneShown(BaseModel):
    """What a prune forgot: claims that guard nothing any more, and logged mails."""

    model_config = ConfigDict(frozen=True)

    keep_days: int
    claims: int
    mails: int


@dataclass(frozen=True, slots=True)
class LinkMaker:
    """The members' app's pages a reminder links to."""

    origin: str

    def links(self, token: str | None) -> Links:
        """The loans page and the member's unsubscribe page."""
        return Links(f"{self.origin}/loans", f"{self.origin}/unsubscribe/{token or ''}")


class Reminders:
    """Reminder settings, log and rounds on one central instance."""

    def __init__(
        self,
        rows: ReminderRows,
        clock: Clock,
        mailer: SendsMail | None,
        links: LinkMaker,
        *,
        actor: str = "admin:api",
        max_attempts: int = MAX_ATTEMPTS,
        metrics: Metrics | None = None,
    ) -> None:
        self.rows = rows
        self.clock = clock
        self.mailer = mailer
        self.link_maker = links
        self.actor = actor
        self.max_attempts = max_attempts
        self.metrics = metrics
        # One round at a time in this instance; other instances are kept out by the claims.
        self._round = asyncio.Lock()
        self._loans_seen: tuple[object, ...] | None = None

    # -- settings and log ----------------------------------------------------------------

    async def settings(self) -> SettingsShown:
        """The settings now."""
        stored = await self.rows.settings()
        return _shown(stored.settings, stored.changed_by, stored.changed_at)

    async def change_settings(self, patch: SettingsPatch) -> SettingsShown:
        """Change some settings; refused (INVALID) if the result could not be used."""
        current = (await self.rows.settings()).settings
        asked = patch.model_dump(exclude_none=True)
        if "overdue_days" in asked:
            asked["overdue_days"] = tuple(sorted(asked["overdue_days"]))
        wanted = replace(current, **asked)
        problems = wanted.problems()
        if problems:
            raise RefusedError(Refusal.INVALID, "; ".join(problems))
        stored = await self.rows.set_settings(wanted, self.actor, self.clock.now())
        return _shown(stored.settings, stored.changed_by, stored.changed_at)

    async def log(self, member_id: str | None, status: str | None) -> list[DeliveryShown]:
        """The delivery log, newest first."""
        if status is not None and status not in STATUSES:
            raise RefusedError(Refusal.INVALID, f"status is one of {', '.join(STATUSES)}")
        return [
            DeliveryShown(
                delivery_id=d.delivery_id,
                member_id=d.member_id,
                kind=d.kind.value,
                step=d.step,
                items=[line.item_id for line in d.lines],
                status=d.status,
                attempts=d.attempts,
                last_error=d.last_error,
                created_at=d.created_at,
                sent_at=d.sent_at,
            )
            for d in await self.rows.log(member_id, status)
        ]

    # -- rounds --------------------------------------------------------------------------

    async def run(self, every_s: float) -> None:
        """Run a round every ``every_s`` until cancelled, and prune once a day; a failed
        round is logged, not fatal."""
        pruned: datetime | None = None
        while True:
            try:
                await self.run_once()
                if pruned is None or self.clock.now() - pruned >= timedelta(days=1):
                    pruned = self.clock.now()
                    await self.prune()
            except Exception:
                log.exception("reminder round failed; trying again in %.0f s", every_s)
            await asyncio.sleep(every_s)

    async def prune_now(self, keep_days: int) -> PruneShown:
        """Prune on an admin's word (audited)."""
        claims, mails = await self.prune(keep_days)
        done = PruneShown(keep_days=keep_days, claims=claims, mails=mails)
        await self.rows.record(
            AuditEntry(self.clock.now(), self.actor, "reminders.prune", detail=done.model_dump())
        )
        return done

    async def prune(self, keep_days: int = KEEP_DAYS) -> tuple[int, int]:
        """Forget spent claims and log rows older than ``keep_days``: (claims, mails)."""
        claims, mails = await self.rows.prune(self.clock.now() - timedelta(days=keep_days))
        if claims or mails:
            log.info("reminders: forgot %s spent claims and %s logged mails", claims, mails)
        return claims, mails

    async def run_now(self) -> RoundShown:
        """One round on an admin's word (audited); refused while no mail can go."""
        if self.mailer is None:
            raise RefusedError(
                Refusal.CONFLICT,
                "reminders need the members' app on (CS_CENTRAL_MEMBERS_APP): their links"
                " lead there, and its SMTP settings send them",
            )
        done = await self.run_once(full=True)
        await self.rows.record(
            AuditEntry(self.clock.now(), self.actor, "reminders.run", detail=done.model_dump())
        )
        return done

    async def run_once(self, *, full: bool = False) -> RoundShown:
        """Claim what is due now, then send every mail whose attempt is due.

        The loans are looked at again only when something could have changed what they
        bring (a new local day, the digest hour, the settings, a loan out, back or renewed)
        or when ``full``; ready holds every round. Skipping is safe: within a day and
        without such a change, what the loans bring can only shrink (see ``compose``).
        """
        async with self._round:
            settings = (await self.rows.settings()).settings
            now = self.clock.now()
            # Local dates can put a loan due up to a day later into the window: two days' slack.
            window = now + timedelta(days=settings.due_soon_days + 2)
            mark = (
                local_day(now, settings),
                digest_time(now, settings),
                settings,
                await self.rows.loans_fingerprint(window),
            )
            loans = full or mark != self._loans_seen
            # Pure and CPU-bound over every loan in the window: off the event loop, so
            # the consumer's verdicts do not wait for it.
            facts = await self._facts(now, window, loans=loans)
            due = await asyncio.to_thread(compose, facts, now, settings)
            claimed = 0
            for reminder in unclaimed(due, await self.rows.taken(claims_of(due))):
                if await self.rows.claim(reminder, now) is not None:
                    claimed += 1
            if loans:
                self._loans_seen = mark
            sent = failed = 0
            if self.mailer is not None:
                for delivery in await self.rows.due_deliveries(self.clock.now(), self.max_attempts):
                    outcome = await self._attempt(delivery, self.mailer, settings)
                    if self.metrics is not None and outcome != "taken":
                        self.metrics.reminders.labels(delivery.kind.value, outcome).inc()
                    sent += outcome == "sent"
                    failed += outcome in ("failed", "bounced", "unreachable")
                    if outcome == "unreachable":
                        break  # the rest wait for the next round, not for timeouts in a row
            return RoundShown(claimed=claimed, sent=sent, failed=failed)

    async def _facts(self, now: datetime, window: datetime, *, loans: bool) -> Facts:
        out = await self.rows.open_loans(window) if loans else []
        return Facts(
            [replace(o.loan, renewable=renewable(o, now)) for o in out],
            await self.rows.ready_holds(),
            await self.rows.unsubscribed(),
        )

    async def _attempt(
        self, delivery: Delivery, mailer: SendsMail, settings: ReminderSettings
    ) -> str:
        now = self.clock.now()
        if not await self.rows.take(delivery, now, now + timedelta(seconds=LEASE_S)):
            return "taken"  # another central is on it
        attempt = delivery.attempts + 1
        # Right before sending: a loan returned since the claim leaves the mail.
        lines = await self.rows.still_out(delivery.lines)
        if not lines:
            await self.rows.finish(delivery.delivery_id, "cancelled", now, error="nothing left out")
            log.info("reminder %s cancelled: every item came back", delivery.delivery_id)
            return "cancelled"
        reminder = Reminder(delivery.kind, delivery.member_id, "", lines, delivery.step)
        links = self.link_maker.links(delivery.token)
        subject, body = render(reminder, delivery.member_name, links, settings)
        headers: dict[str, str] = {}
        if delivery.kind is not Kind.HOLD_READY:
            # RFC 8058 one-click: the mail client POSTs to the same page a person confirms on.
            headers["List-Unsubscribe"] = f"<{links.unsubscribe}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        assert delivery.email is not None  # no_address rows are never queued
        try:
            await mailer.send(delivery.email, subject, body, headers)
        except Exception as exc:
            return await self._failed(delivery, attempt, exc)
        holds = [line.hold_id for line in lines if line.hold_id is not None]
        await self.rows.finish(delivery.delivery_id, "sent", self.clock.now(), holds=holds)
        log.info(
            "reminder %s (%s) sent to member %s, attempt %d",
            delivery.delivery_id,
            delivery.kind.value,
            delivery.member_id,
            attempt,
        )
        return "sent"

    async def _failed(self, delivery: Delivery, attempt: int, exc: BaseException) -> str:
        now = self.clock.now()
        error = _said(exc)
        if temporary(exc) and attempt < self.max_attempts:
            retry_at = now + timedelta(seconds=retry_delay_s(attempt))
            await self.rows.finish(
                delivery.delivery_id, "failed", now, error=error, retry_at=retry_at
            )
            log.warning(
                "reminder %s attempt %d failed (%s); next try at %s",
                delivery.delivery_id,
                attempt,
                error,
                retry_at.isoformat(),
            )
        else:
            status = "failed" if temporary(exc) else "bounced"
            await self.rows.finish(delivery.delivery_id, status, now, error=error)
            log.warning(
                "reminder %s attempt %d failed for good: %s", delivery.delivery_id, attempt, error
            )
        if unreachable(exc):
            return "unreachable"
        return "failed" if temporary(exc) else "bounced"


def _said(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return f"{code} {text.decode(errors='replace')}"[:300]
    if isinstance(exc, smtplib.SMTPResponseException):
        raw: bytes | str = exc.smtp_error
        said = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        return f"{exc.smtp_code} {said}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def _shown(settings: ReminderSettings, by: str, at: datetime) -> SettingsShown:
    values: dict[str, Any] = {
        "enabled": settings.enabled,
        "digest_hour": settings.digest_hour,
        "timezone": settings.timezone,
        "due_soon_days": settings.due_soon_days,
        "overdue_days": list(settings.overdue_days),
    }
    return SettingsShown(**values, changed_by=by, changed_at=at)
