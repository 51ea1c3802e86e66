"""Reminder composition without a database: who gets which mail, when, and never twice."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from central.reminders import (
    Facts,
    Kind,
    Links,
    Loan,
    ReadyHold,
    Reminder,
    ReminderSettings,
    Subject,
    claims_of,
    compose,
    lines_from_json,
    lines_json,
    render,
    subject_of,
    unclaimed,
)
from central.services.reminders import retry_delay_s, temporary, unreachable

NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
UTC_8 = ReminderSettings(digest_hour=8)


def loan(n: int, member: str, due_at: datetime, *, renewable: bool = False) -> Loan:
    return Loan(n, member, f"ITEM-{n}", f"Item {n}", due_at, renewable)


def kinds(mails: list[Reminder]) -> list[tuple[Kind, str, tuple[str, ...]]]:
    return [(m.kind, m.member_id, tuple(line.item_id for line in m.lines)) for m in mails]


def test_one_digest_per_member_names_every_loan_due_soon() -> None:
    facts = Facts(
        [
            loan(1, "M-1", NOON + timedelta(days=1)),
            loan(2, "M-1", NOON + timedelta(days=2, hours=3)),
            loan(3, "M-1", NOON + timedelta(days=5)),  # not soon yet
            loan(4, "M-2", NOON + timedelta(hours=2)),
        ]
    )
    mails = compose(facts, NOON, ReminderSettings(due_soon_days=2))
    assert kinds(mails) == [
        (Kind.DIGEST, "M-1", ("ITEM-1", "ITEM-2")),
        (Kind.DIGEST, "M-2", ("ITEM-4",)),
    ]
    assert mails[0].claim == "digest:M-1:2026-01-05"
    assert [line.claim for line in mails[0].lines] == [
        "due:1@20260106T120000Z",
        "due:2@20260107T150000Z",
    ]


def test_nothing_goes_before_the_digest_hour_or_when_switched_off_but_holds_do() -> None:
    facts = Facts(
        [loan(1, "M-1", NOON + timedelta(days=1))],
        [ReadyHold(9, "M-2", "SAW-01", "Jigsaw", NOON)],
    )
    early = NOON.replace(hour=7, minute=59)
    assert kinds(compose(facts, early, UTC_8)) == [(Kind.HOLD_READY, "M-2", ("SAW-01",))]
    assert compose(facts, NOON, ReminderSettings(enabled=False)) == []


def test_unsubscribed_members_get_no_digest_or_overdue_mail_but_hold_ready_still() -> None:
    facts = Facts(
        [loan(1, "M-1", NOON + timedelta(days=1)), loan(2, "M-1", NOON - timedelta(days=1))],
        [ReadyHold(9, "M-1", "SAW-01", "Jigsaw", NOON)],
        frozenset({"M-1"}),
    )
    assert kinds(compose(facts, NOON, UTC_8)) == [(Kind.HOLD_READY, "M-1", ("SAW-01",))]


def test_overdue_mail_goes_on_each_escalation_day_only() -> None:
    due = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)
    steps = {}
    for day in range(20):
        now = due.replace(hour=9) + timedelta(days=day)
        mails = compose(Facts([loan(1, "M-1", due)]), now, UTC_8)
        late = [m for m in mails if m.kind is Kind.OVERDUE]
        steps[day] = late[0].step if late else None
    # The highest configured day reached; the claims make each step one mail.
    assert steps[0] is None  # not due yet at 09:00
    assert [steps[d] for d in (1, 6, 7, 13, 14, 19)] == [1, 1, 7, 7, 14, 14]
    mail = compose(Facts([loan(1, "M-1", due)]), due + timedelta(days=7), UTC_8)[0]
    assert [line.claim for line in mail.lines] == ["overdue:1@20260105T170000Z:7"]


def test_days_are_the_librarys_local_days_across_midnight_and_dst() -> None:
    paris = ReminderSettings(digest_hour=8, timezone="Europe/Paris", overdue_days=(1,))
    # 23:30 UTC on 31 Dec is already 1 January in Paris: the digest day is the new year's.
    new_year = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    due = datetime(2027, 1, 2, 10, 0, tzinfo=UTC)
    late_morning = new_year + timedelta(hours=8)  # 08:30 Paris, 1 January
    assert compose(Facts([loan(1, "M-1", due)]), new_year, paris) == []  # 00:30 local: too early
    assert compose(Facts([loan(1, "M-1", due)]), late_morning, paris)[0].claim == (
        "digest:M-1:2027-01-01"
    )
    # Due at 23:30 in Paris (21:30 UTC): at 01:00 Paris it is a day late there, though
    # still the same day in UTC.
    midnight = ReminderSettings(digest_hour=0, timezone="Europe/Paris", overdue_days=(1,))
    due_late_evening = datetime(2026, 6, 10, 21, 30, tzinfo=UTC)
    one_am = datetime(2026, 6, 10, 23, 0, tzinfo=UTC)
    assert compose(Facts([loan(2, "M-1", due_late_evening)]), one_am, midnight)[0].step == 1
    assert (
        compose(
            Facts([loan(2, "M-1", due_late_evening)]),
            one_am,
            ReminderSettings(digest_hour=0, overdue_days=(1,)),
        )
        == []
    )
    # ...and in New York a loan due at 23:30 local (04:30 UTC next day) is not late that day.
    york = ReminderSettings(digest_hour=8, timezone="America/New_York", overdue_days=(1,))
    due_ny = datetime(2026, 6, 11, 3, 30, tzinfo=UTC)  # 23:30 EDT on 10 June
    same_day = datetime(2026, 6, 11, 2, 0, tzinfo=UTC)  # 22:00 EDT on 10 June
    assert compose(Facts([loan(3, "M-1", due_ny)]), same_day, york)[0].kind is Kind.DIGEST
    next_day = datetime(2026, 6, 11, 13, 0, tzinfo=UTC)  # 09:00 EDT on 11 June
    assert compose(Facts([loan(3, "M-1", due_ny)]), next_day, york)[0].step == 1
    # Spring forward (29 March 2026, Paris): the digest hour is the wall clock's.
    before = datetime(2026, 3, 28, 6, 30, tzinfo=UTC)  # 07:30 CET
    after = datetime(2026, 3, 29, 6, 30, tzinfo=UTC)  # 08:30 CEST
    soon = [loan(4, "M-1", datetime(2026, 3, 30, 12, tzinfo=UTC))]
    assert compose(Facts(soon), before, paris) == []
    assert compose(Facts(soon), after, paris)[0].claim == "digest:M-1:2026-03-29"


def claimed_round(claims: set[str], mails: list[Reminder]) -> list[Reminder]:
    """What the storage's claim transaction lets through (its rule, on a set)."""
    sent = []
    # The round's read-only filter first, as the service does; then the claims' own rule.
    for mail in unclaimed(mails, claims & claims_of(mails)):
        if mail.claim in claims:
            continue
        lines = tuple(line for line in mail.lines if line.claim not in claims)
        if not lines:
            continue
        claims.add(mail.claim)
        claims.update(line.claim for line in lines)
        sent.append(Reminder(mail.kind, mail.member_id, mail.claim, lines, mail.step))
    return sent


@settings(max_examples=60, deadline=None)
@given(
    dues=st.lists(st.integers(min_value=-30 * 24, max_value=10 * 24), min_size=1, max_size=6),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Pacific/Auckland"]),
    hour=st.integers(min_value=0, max_value=23),
)
def test_hourly_rounds_for_a_month_send_nothing_twice(
    dues: list[int], zone: str, hour: int
) -> None:
    rules = ReminderSettings(digest_hour=hour, timezone=zone)
    start = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)  # spans the March DST changes
    loans = [loan(n, f"M-{n % 2}", start + timedelta(hours=h)) for n, h in enumerate(dues)]
    claims: set[str] = set()
    digests: dict[tuple[str, str], int] = {}
    named: dict[str, int] = {}
    for h in range(0, 40 * 24, 1):
        now = start + timedelta(hours=h)
        for mail in claimed_round(claims, compose(Facts(loans), now, rules)):
            if mail.kind is Kind.DIGEST:
                key = (mail.member_id, mail.claim.rsplit(":", 1)[1])
                digests[key] = digests.get(key, 0) + 1
            for line in mail.lines:
                named[line.claim] = named.get(line.claim, 0) + 1
    assert all(n == 1 for n in digests.values()), digests  # one digest per member per day
    assert all(n == 1 for n in named.values()), named  # each loan's notice once
    # A loan late long enough reached the last escalation day, once.
    for item in loans:
        if (start + timedelta(days=40) - item.due_at).days > 16:
            assert named[f"overdue:{item.checkout_id}@{item.due_at:%Y%m%dT%H%M%SZ}:14"] == 1


def test_the_mail_names_items_due_dates_and_renew_and_unsubscribe_links() -> None:
    rules = ReminderSettings(timezone="Europe/Paris")
    facts = Facts(
        [
            loan(1, "M-1", datetime(2026, 1, 6, 16, 0, tzinfo=UTC), renewable=True),
            loan(2, "M-1", datetime(2026, 1, 7, 16, 0, tzinfo=UTC)),
        ]
    )
    links = Links("https://lib.example/loans", "https://lib.example/unsubscribe/TOKEN")
    subject, body = render(compose(facts, NOON, rules)[0], "Ada", links, rules)
    assert subject == "2 items due soon"
    assert "Item 1 (ITEM-1), due Tue 06 Jan 2026 17:00 - you can renew it" in body
    assert "Item 2 (ITEM-2), due Wed 07 Jan 2026 17:00\n" in body
    assert "https://lib.example/loans" in body
    assert "https://lib.example/unsubscribe/TOKEN" in body
    # Nothing renewable, no renew link; a hold-ready mail has no unsubscribe link.
    _, plain = render(compose(Facts([facts.loans[1]]), NOON, rules)[0], "Ada", links, rules)
    assert "/loans" not in plain
    hold = compose(Facts(holds=[ReadyHold(3, "M-1", "SAW-01", "Jigsaw", NOON)]), NOON, rules)
    subject, body = render(hold[0], "Ada", links, rules)
    assert subject == "Ready for you: Jigsaw"
    assert "unsubscribe" not in body
    # Told at once, the member has the library's 48 h from the return; told late (the
    # mail could not go for two days), still a day from the mail (central/circulation.py).
    assert "kept for you until Wed 07 Jan 2026 13:00." in body
    late = compose(
        Facts(holds=[ReadyHold(3, "M-1", "SAW-01", "Jigsaw", NOON)]),
        NOON + timedelta(hours=47),
        rules,
    )
    _, body = render(late[0], "Ada", links, rules)
    assert "kept for you until Thu 08 Jan 2026 12:00." in body


def test_the_log_keeps_what_a_mail_covers() -> None:
    mail = compose(Facts([loan(1, "M-1", NOON + timedelta(days=1), renewable=True)]), NOON, UTC_8)
    assert lines_from_json(lines_json(mail[0].lines)) == mail[0].lines


def test_settings_that_cannot_be_used_are_named() -> None:
    assert ReminderSettings().problems() == []
    bad = ReminderSettings(digest_hour=24, timezone="Mars/Olympus", overdue_days=(7, 7, 0))
    assert bad.problems() == [
        "digest hour must be 0..23",
        "overdue days must be distinct whole days 1..365",
        "unknown time zone 'Mars/Olympus'",
    ]


def test_4xx_and_unreachable_servers_are_retried_with_backoff_5xx_bounce() -> None:
    assert temporary(smtplib.SMTPDataError(451, b"try later"))
    assert temporary(ConnectionRefusedError())
    assert temporary(smtplib.SMTPServerDisconnected())
    assert temporary(smtplib.SMTPRecipientsRefused({"a@x": (450, b"busy")}))
    assert not temporary(smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}))
    assert not temporary(smtplib.SMTPDataError(554, b"rejected"))
    assert not temporary(smtplib.SMTPNotSupportedError("SMTPUTF8 not supported"))
    assert [retry_delay_s(n) for n in (1, 2, 3, 8)] == [60.0, 120.0, 240.0, 3600.0]
    # A server out of reach ends the round's sending; one that answered does not.
    assert unreachable(ConnectionRefusedError())
    assert unreachable(smtplib.SMTPServerDisconnected())
    assert not unreachable(smtplib.SMTPDataError(451, b"try later"))
    assert not unreachable(smtplib.SMTPNotSupportedError("SMTPUTF8 not supported"))
    assert not unreachable(smtplib.SMTPRecipientsRefused({"a@x": (450, b"busy")}))


def test_a_round_skips_what_earlier_rounds_claimed_and_keeps_the_rest() -> None:
    facts = Facts(
        [loan(1, "M-1", NOON + timedelta(days=1)), loan(2, "M-1", NOON + timedelta(days=2))]
    )
    mails = compose(facts, NOON, UTC_8)
    one, two = "due:1@20260106T120000Z", "due:2@20260107T120000Z"
    assert claims_of(mails) == {"digest:M-1:2026-01-05", one, two}
    # Loan 1 was in yesterday's digest: today's names loan 2 only.
    [today] = unclaimed(mails, {one})
    assert [line.item_id for line in today.lines] == ["ITEM-2"]
    # Today's digest went already, or everything in it did: nothing.
    assert unclaimed(mails, {"digest:M-1:2026-01-05"}) == []
    assert unclaimed(mails, {one, two}) == []


def test_a_renewed_loan_is_reminded_again_of_its_new_due_date() -> None:
    claims: set[str] = set()
    first = loan(1, "M-1", NOON + timedelta(days=1))
    assert len(claimed_round(claims, compose(Facts([first]), NOON, UTC_8))) == 1
    # Renewed the next day for two weeks: the same checkout, a new due time.
    renewed = loan(1, "M-1", NOON + timedelta(days=15))
    later = NOON + timedelta(days=13)
    assert kinds(claimed_round(claims, compose(Facts([renewed]), later, UTC_8))) == [
        (Kind.DIGEST, "M-1", ("ITEM-1",))
    ]


def test_a_hold_ready_mail_is_claimed_once() -> None:
    facts = Facts(holds=[ReadyHold(3, "M-1", "SAW-01", "Jigsaw", NOON)])
    claims: set[str] = set()
    first = claimed_round(claims, compose(facts, NOON, UTC_8))
    assert kinds(first) == [(Kind.HOLD_READY, "M-1", ("SAW-01",))]
    assert claimed_round(claims, compose(facts, NOON + timedelta(hours=1), UTC_8)) == []


def test_every_claim_compose_makes_names_what_keeps_it_needed() -> None:
    # Pruning forgets a claim only when what it names has ended; a shape it cannot read
    # must be kept (a loan id no row has), never forgotten.
    now = datetime(2026, 3, 10, 9, tzinfo=UTC)
    loans = [
        Loan(41, "M-1", "DRILL-01", "Drill", now - timedelta(days=3), renewable=False),
        Loan(42, "M-1", "SAW-01", "Saw", now + timedelta(days=1), renewable=True),
    ]
    holds = [ReadyHold(7, "M-2", "RAKE-01", "Rake", now)]
    settings = ReminderSettings(digest_hour=0, due_soon_days=2, overdue_days=(1,))
    claims = claims_of(compose(Facts(loans, holds, frozenset()), now, settings))
    assert {c: subject_of(c) for c in claims} == {
        "digest:M-1:2026-03-10": Subject(),
        "late:M-1:2026-03-10:1": Subject(),
        "due:42@20260311T090000Z": Subject(checkout_id=42),
        "overdue:41@20260307T090000Z:1": Subject(checkout_id=41),
        "hold:7": Subject(hold_id=7),
        "ready:M-2:7": Subject(hold_id=7),
    }
    assert subject_of("due:x@1") == Subject(checkout_id=-1)
    assert subject_of("something-new:1") == Subject(checkout_id=-1)
