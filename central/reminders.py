"""Who is reminded of what, now: reminder mails composed from loans, holds, settings and the time.

Pure: no database, no clock, no SMTP. The shell (``central/services/reminders.py``) loads
the facts, claims each mail and each line in one transaction (so nothing goes out twice,
whatever the number of centrals), then sends what it claimed.

Days are the library's own days: "today", "due in two days" and "seven days late" are
counted in local dates in ``ReminderSettings.timezone``, so a loan due at 23:30 is not a
day late at 00:10 UTC, and the digest hour follows the wall clock across DST changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from central.circulation import hold_ends


class Kind(StrEnum):
    """What a reminder mail is about."""

    DIGEST = "digest"  # loans due soon, one mail per member per day
    HOLD_READY = "hold_ready"  # an item waits on the hold shelf for the member
    OVERDUE = "overdue"  # loans late by one of the escalation days


@dataclass(frozen=True, slots=True)
class ReminderSettings:
    """What staff set for reminders (``cs-admin reminders settings``)."""

    enabled: bool = True
    digest_hour: int = 8  # local hour from which the day's digests and overdue mails go
    timezone: str = "UTC"  # the library's zone: what "a day" means
    due_soon_days: int = 2  # a loan due within this many local days is "due soon"
    overdue_days: tuple[int, ...] = (1, 7, 14)  # days late on which an overdue mail goes

    def problems(self) -> list[str]:
        """Why these settings cannot be used, in words (empty when they can)."""
        out = []
        if not 0 <= self.digest_hour <= 23:
            out.append("digest hour must be 0..23")
        if not 0 <= self.due_soon_days <= 30:
            out.append("due-soon window must be 0..30 days")
        days = self.overdue_days
        if any(d < 1 or d > 365 for d in days) or len(set(days)) != len(days):
            out.append("overdue days must be distinct whole days 1..365")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(f"unknown time zone {self.timezone!r}")
        return out


@dataclass(frozen=True, slots=True)
class Loan:
    """An open checkout, as reminders see it."""

    checkout_id: int
    member_id: str
    item_id: str
    item_name: str
    due_at: datetime
    renewable: bool  # the renewal rule's answer now: a renew link goes with it


@dataclass(frozen=True, slots=True)
class ReadyHold:
    """A hold whose item waits on the hold shelf and whose member was not yet told."""

    hold_id: int
    member_id: str
    item_id: str
    item_name: str
    ready_at: datetime
    hold_hours: int = 48  # the library's setting: how long the hold shelf keeps it


@dataclass(frozen=True, slots=True)
class Line:
    """One item a mail names; ``claim`` is what makes it named once only."""

    claim: str
    item_id: str
    item_name: str
    due_at: datetime | None = None
    renewable: bool = False
    checkout_id: int | None = None
    hold_id: int | None = None


@dataclass(frozen=True, slots=True)
class Reminder:
    """One mail to one member. ``claim`` makes the mail itself once per member, kind and day."""

    kind: Kind
    member_id: str
    claim: str
    lines: tuple[Line, ...]
    step: int | None = None  # the overdue escalation day this mail is for


@dataclass(frozen=True, slots=True)
class Facts:
    """What the shell loads for one round."""

    loans: Sequence[Loan] = ()
    holds: Sequence[ReadyHold] = ()
    # Members who unsubscribed: no digest, no overdue mail (hold-ready still goes: it is
    # the answer to their own request, and it starts the hold's expiry clock).
    unsubscribed: frozenset[str] = field(default_factory=frozenset)


def local_day(moment: datetime, settings: ReminderSettings) -> date:
    """The library's date at ``moment``."""
    return moment.astimezone(ZoneInfo(settings.timezone)).date()


def digest_time(now: datetime, settings: ReminderSettings) -> bool:
    """Whether today's digests and overdue mails may go (the local digest hour has come)."""
    return now.astimezone(ZoneInfo(settings.timezone)).hour >= settings.digest_hour


def overdue_step(due_at: datetime, now: datetime, settings: ReminderSettings) -> int | None:
    """The escalation day a loan has reached (the highest configured one), or None."""
    if due_at > now:
        return None
    late = (local_day(now, settings) - local_day(due_at, settings)).days
    reached = [d for d in settings.overdue_days if late >= d]
    return max(reached) if reached else None


def due_soon(due_at: datetime, now: datetime, settings: ReminderSettings) -> bool:
    """Whether a loan not yet due falls due within the window (in local days)."""
    if due_at <= now:
        return False
    return (local_day(due_at, settings) - local_day(now, settings)).days <= settings.due_soon_days


def compose(facts: Facts, now: datetime, settings: ReminderSettings) -> list[Reminder]:
    """Every mail that should go now, before claims remove what already went.

    The claims make "nothing twice": a digest once per member and local day, a loan in a
    digest once per due time (``due:<checkout>@<due>``), an overdue step once per loan
    and due time (``overdue:<checkout>@<due>:<day>``), a hold-ready mail once per hold. The
    due time is in the claim so a renewed loan is reminded again of its new date.
    """
    if not settings.enabled:
        return []
    out: list[Reminder] = []
    today = local_day(now, settings).isoformat()
    if digest_time(now, settings):
        soon: dict[str, list[Line]] = {}
        late: dict[tuple[str, int], list[Line]] = {}
        for loan in sorted(facts.loans, key=lambda x: (x.due_at, x.item_id)):
            if loan.member_id in facts.unsubscribed:
                continue
            step = overdue_step(loan.due_at, now, settings)
            if step is not None:
                late.setdefault((loan.member_id, step), []).append(
                    _loan_line(f"overdue:{_loan_key(loan)}:{step}", loan)
                )
            elif due_soon(loan.due_at, now, settings):
                soon.setdefault(loan.member_id, []).append(
                    _loan_line(f"due:{_loan_key(loan)}", loan)
                )
        for member_id, lines in sorted(soon.items()):
            out.append(
                Reminder(Kind.DIGEST, member_id, f"digest:{member_id}:{today}", tuple(lines))
            )
        for (member_id, step), lines in sorted(late.items()):
            claim = f"late:{member_id}:{today}:{step}"
            out.append(Reminder(Kind.OVERDUE, member_id, claim, tuple(lines), step))
    for hold in sorted(facts.holds, key=lambda h: h.hold_id):
        # The mail tells the member now, so the hold runs from now: it says until when.
        kept = hold_ends(hold.ready_at, now, hold.hold_hours)
        line = Line(
            f"hold:{hold.hold_id}", hold.item_id, hold.item_name, due_at=kept, hold_id=hold.hold_id
        )
        claim = f"ready:{hold.member_id}:{hold.hold_id}"  # never the line's own claim
        out.append(Reminder(Kind.HOLD_READY, hold.member_id, claim, (line,)))
    return out


@dataclass(frozen=True, slots=True)
class Subject:
    """What keeps a claim needed: a loan still out, a hold still untold, or neither."""

    checkout_id: int | None = None
    hold_id: int | None = None


def subject_of(claim: str) -> Subject:
    """What ``claim`` guards, read back from its text (see ``compose`` for the shapes).

    A digest's or an overdue mail's own claim names its local day, so once that day is
    past nothing composes it again: it guards nothing (``Subject()``). A loan's line is
    composed while the loan is out, a hold's while it is ready and untold. A claim of a
    shape this code does not know is kept (a loan or hold id of -1 never matches a row
    that has ended, so it is never pruned).
    """
    kind, _, rest = claim.partition(":")
    if kind in ("digest", "late"):
        return Subject()
    if kind in ("due", "overdue"):
        number = rest.partition("@")[0]
        return Subject(checkout_id=int(number) if number.isdigit() else -1)
    if kind in ("hold", "ready"):
        number = rest.rpartition(":")[2]
        return Subject(hold_id=int(number) if number.isdigit() else -1)
    return Subject(checkout_id=-1)


def claims_of(reminders: Iterable[Reminder]) -> set[str]:
    """Every claim ``reminders`` would take (to look up which are already taken)."""
    return {c for r in reminders for c in (r.claim, *(line.claim for line in r.lines))}


def unclaimed(reminders: Iterable[Reminder], taken: set[str]) -> list[Reminder]:
    """``reminders`` without what an earlier round already claimed.

    Only a filter, to spare the database a write transaction per member per round: the
    claim transaction is what guarantees "nothing twice" when rounds race.
    """
    out = []
    for reminder in reminders:
        lines = tuple(line for line in reminder.lines if line.claim not in taken)
        if reminder.claim not in taken and lines:
            out.append(
                Reminder(reminder.kind, reminder.member_id, reminder.claim, lines, reminder.step)
            )
    return out


def _loan_key(loan: Loan) -> str:
    return f"{loan.checkout_id}@{loan.due_at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _loan_line(claim: str, loan: Loan) -> Line:
    return Line(
        claim,
        loan.item_id,
        loan.item_name,
        due_at=loan.due_at,
        renewable=loan.renewable,
        checkout_id=loan.checkout_id,
    )


@dataclass(frozen=True, slots=True)
class Links:
    """Where a mail's links lead (the members' app)."""

    loans: str  # the loans page, where a POST button renews (a link never renews)
    unsubscribe: str  # GET shows a confirmation, POST unsubscribes


def render(
    reminder: Reminder, name: str, links: Links, settings: ReminderSettings
) -> tuple[str, str]:
    """The subject and plain-text body of one mail."""
    zone = ZoneInfo(settings.timezone)

    def when(moment: datetime | None) -> str:
        return "" if moment is None else moment.astimezone(zone).strftime("%a %d %b %Y %H:%M")

    items = [f"- {line.item_name} ({line.item_id})" for line in reminder.lines]
    dated = [
        f"- {line.item_name} ({line.item_id}), due {when(line.due_at)}"
        + (" - you can renew it" if line.renewable else "")
        for line in reminder.lines
    ]
    renew = any(line.renewable for line in reminder.lines)
    if reminder.kind is Kind.HOLD_READY:
        subject = f"Ready for you: {reminder.lines[0].item_name}"
        body = ["Good news: the item you placed a hold on is on the hold shelf for you.", *items]
        body += ["", f"It is kept for you until {when(reminder.lines[0].due_at)}."]
        body += ["", "Scan your pass at a kiosk and then the item to check it out."]
    elif reminder.kind is Kind.OVERDUE:
        subject = _counted("overdue item", "overdue items", reminder.lines)
        body = [f"These items are {reminder.step} day(s) past their due date:", *dated]
        body += ["", "Please bring them back to any return point."]
    else:
        subject = _counted("item due soon", "items due soon", reminder.lines)
        body = ["These items are due back soon:", *dated]
    if renew:
        body += ["", f"Renew on your loans page (sign in, then press Renew): {links.loans}"]
    body = [f"Hello {name},", "", *body, "", "CommunityShare"]
    if reminder.kind is not Kind.HOLD_READY:
        body += ["", f"No more reminder e-mails: {links.unsubscribe}"]
    return subject, "\n".join(body) + "\n"


def _counted(one: str, many: str, lines: Sequence[Line]) -> str:
    return f"1 {one}" if len(lines) == 1 else f"{len(lines)} {many}"


def parse_days(text: str) -> tuple[int, ...]:
    """Escalation days written as ``1,7,14`` (sorted, as stored)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return tuple(sorted(int(p) for p in parts))


def lines_json(lines: Iterable[Line]) -> list[Mapping[str, object]]:
    """Lines as the delivery log stores them (what the mail covers)."""
    return [
        {
            "claim": line.claim,
            "item_id": line.item_id,
            "item_name": line.item_name,
            "due_at": None if line.due_at is None else line.due_at.isoformat(),
            "renewable": line.renewable,
            "checkout_id": line.checkout_id,
            "hold_id": line.hold_id,
        }
        for line in lines
    ]


def lines_from_json(rows: Iterable[Mapping[str, object]]) -> tuple[Line, ...]:
    """The inverse of :func:`lines_json`."""
    out = []
    for row in rows:
        due = row.get("due_at")
        checkout = row.get("checkout_id")
        hold = row.get("hold_id")
        out.append(
            Line(
                str(row["claim"]),
                str(row["item_id"]),
                str(row["item_name"]),
                due_at=datetime.fromisoformat(due) if isinstance(due, str) else None,
                renewable=bool(row.get("renewable")),
                checkout_id=checkout if isinstance(checkout, int) else None,
                hold_id=hold if isinstance(hold, int) else None,
            )
        )
    return tuple(out)
