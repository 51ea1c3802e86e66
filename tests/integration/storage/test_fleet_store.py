"""Enrolment codes, broker accounts and retirement in the store, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker import auth
from broker.messages import Reason
from central.clock import FakeClock
from central.errors import StorageError
from tests.unit.central.support import AnyStore

ADMIN = "admin:test"


async def test_an_enrolment_code_works_once_and_not_after_it_expires(
    library: AnyStore, clock: FakeClock
) -> None:
    now = clock.now()
    await library.issue_enrolment(
        "C1", "KIOSK-N1", "SHELF-A", now, now + timedelta(minutes=5), ADMIN
    )
    await library.issue_enrolment(
        "C2", "KIOSK-N2", "SHELF-A", now, now + timedelta(minutes=5), ADMIN
    )

    first = await library.claim_enrolment("C1", auth.hash_password("pw"), now, "claim:a")
    assert (first.kiosk_id, first.shelf_id, first.refusal) == ("KIOSK-N1", "SHELF-A", None)
    again = await library.claim_enrolment("C1", auth.hash_password("pw2"), now, "claim:b")
    assert again.refusal is Reason.ALREADY_USED
    late = await library.claim_enrolment(
        "C2", auth.hash_password("pw"), now + timedelta(minutes=6), "claim:c"
    )
    assert late.refusal is Reason.EXPIRED
    unknown = await library.claim_enrolment("C9", auth.hash_password("pw"), now, "claim:d")
    assert unknown.refusal is Reason.UNKNOWN_CODE

    users = {a.username: a for a in await library.broker_accounts()}
    assert set(users) == {"KIOSK-N1"}  # only the claim that worked made a broker user
    assert users["KIOSK-N1"].shelf_id == "SHELF-A"
    assert auth.check_password("pw", users["KIOSK-N1"].password_hash)
    claims = [str(r.reason) for r in await library.audit_tail(50) if r.action == "kiosk.claim"]
    assert sorted(claims) == ["ALREADY_USED", "ENROLLED", "EXPIRED", "UNKNOWN_CODE"]


async def test_an_enrolment_code_cannot_name_an_enrolled_kiosk_or_unknown_shelf(
    library: AnyStore, clock: FakeClock
) -> None:
    now, later = clock.now(), clock.now() + timedelta(minutes=5)
    with pytest.raises(StorageError, match="already enrolled"):
        await library.issue_enrolment("C1", "KIOSK-A", "SHELF-A", now, later, ADMIN)
    with pytest.raises(StorageError, match="no shelf"):
        await library.issue_enrolment("C1", "KIOSK-N1", "SHELF-X", now, later, ADMIN)


async def test_retiring_removes_the_broker_user_keeps_history_and_stays_retired(
    library: AnyStore, clock: FakeClock
) -> None:
    now = clock.now()
    await library.enrol_kiosk("KIOSK-N1", "SHELF-A", auth.hash_password("one"), now, ADMIN)
    await library.enrol_kiosk(
        "KIOSK-N1", "SHELF-A", auth.hash_password("two"), now, ADMIN, rotate=True
    )
    (account,) = [a for a in await library.broker_accounts() if a.username == "KIOSK-N1"]
    assert auth.check_password("two", account.password_hash)
    assert not auth.check_password("one", account.password_hash)

    await library.retire_kiosk("KIOSK-N1", now, ADMIN, "stolen")
    assert "KIOSK-N1" not in {a.username for a in await library.broker_accounts()}
    assert "KIOSK-N1" not in {c.kiosk_id for c in await library.kiosk_configs()}
    with pytest.raises(StorageError, match="already retired"):
        await library.retire_kiosk("KIOSK-N1", now, ADMIN, "twice")
    with pytest.raises(StorageError, match="retired"):
        await library.enrol_kiosk(
            "KIOSK-N1", "SHELF-A", auth.hash_password("x"), now, ADMIN, rotate=True
        )
    with pytest.raises(LookupError):
        await library.retire_kiosk("KIOSK-NONE", now, ADMIN, "never was")
    actions = [r.action for r in await library.audit_tail(50)]
    assert {"kiosk.enrol", "kiosk.rotate", "kiosk.retire"} <= set(actions)
