"""The console's writes and prints: each one role-checked, CSRF-checked and a service call."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from broker.labels import LabelCard, label_pages, make_qr, pass_image, pdf_bytes
from central.api.imports import parse_import
from central.api.items import ItemIn
from central.api.refusals import STATUS
from central.api.shelves import ShelfIn
from central.api.text import Text
from central.console.parts import ConsoleParts, for_staff
from central.services.audit_log import AuditLog
from central.services.browse import Browse
from central.services.circulation import Circulation
from central.services.enrolment import KioskEnrolment
from central.services.invitations import MemberInvitations
from central.services.kiosks import ConfigPatch, Kiosks
from central.services.library import Library
from central.services.refusals import Refusal, RefusedError
from central.services.rollout_control import RolloutControl
from central.services.security_actions import SecurityActions
from central.services.staff import Role
from central.storage.rollout import FlagMode, FlagSetting
from central.web.store import MembersData

if TYPE_CHECKING:
    from central.console.gate import Staff

MAX_CSV = 2 * 1024 * 1024  # 20,000 rows of items fit well inside
MAX_LABELS = 240  # ten A4 sheets per print
Reason = Annotated[Text, Form(min_length=1, max_length=200)]
Confirm = Annotated[Literal["yes"], Form()]


def status_of(exc: RefusedError) -> int:
    """The HTTP status of a service's refusal, as the admin API answers it."""
    return STATUS[exc.refusal]


def _done(message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": True, "message": message, **extra}


def _pdf(content: bytes, name: str) -> Response:
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


def csv_rows(raw: bytes) -> list[dict[str, Any]]:
    """A CSV file's rows as dicts (header row first); a refused file says why (422)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RefusedError(Refusal.INVALID, "the file is not UTF-8 text") from exc
    reader = csv.DictReader(io.StringIO(text))
    rows: list[dict[str, Any]] = []
    for line in reader:
        row: dict[str, Any] = {k.strip(): (v or "").strip() for k, v in line.items() if k}
        if row.get("loan_days", "") == "":
            row.pop("loan_days", None)
        rows.append(row)
    return rows


def router(parts: ConsoleParts, volunteer: Any, admin: Any, browse: Browse) -> APIRouter:  # noqa: PLR0915 - one route per action
    """The console's write routes."""
    routes = APIRouter()
    services = parts.services

    # -- library (volunteer) -----------------------------------------------------------------

    @routes.post("/shelves")
    async def add_shelf(
        shelf_id: Annotated[str, Form(max_length=32)],
        name: Annotated[Text, Form(min_length=1, max_length=80)],
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        try:
            shelf = ShelfIn(shelf_id=shelf_id, name=name)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        await for_staff(services, Library, staff).add_shelf(shelf.shelf_id, shelf.name)
        return _done(f"{shelf.shelf_id} added")

    @routes.post("/items")
    async def add_item(
        item_id: Annotated[str, Form(max_length=32)],
        shelf_id: Annotated[str, Form(max_length=32)],
        name: Annotated[Text, Form(min_length=1, max_length=80)],
        loan_days: Annotated[int, Form(ge=1, le=365)] = 14,
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        try:
            item = ItemIn(item_id=item_id, shelf_id=shelf_id, name=name, loan_days=loan_days)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        library = for_staff(services, Library, staff)
        await library.add_item(item.item_id, item.shelf_id, item.name, item.loan_days)
        return _done(f"{item.item_id} added", item_id=item.item_id)

    @routes.post("/items/import")
    async def import_items(
        file: Annotated[UploadFile, File()], staff: Staff = volunteer
    ) -> dict[str, Any]:
        raw = await file.read(MAX_CSV + 1)
        if len(raw) > MAX_CSV:
            raise RefusedError(Refusal.INVALID, "the file is over 2 MB: split it")
        rows = csv_rows(raw)
        body = json.dumps({"rows": rows}).encode()
        # The admin API's own parser: every bad row named, nothing added if one is bad.
        try:
            checked = await asyncio.to_thread(parse_import, ItemIn, body)
        except RequestValidationError as exc:
            problems = [
                {
                    "row": int(e["loc"][2]) + 2 if len(e["loc"]) > 2 else None,  # file line
                    "column": str(e["loc"][3]) if len(e["loc"]) > 3 else "",
                    "message": e["msg"],
                }
                for e in exc.errors()[:200]
            ]
            raise RefusedError(
                Refusal.INVALID, {"message": "nothing imported", "problems": problems}
            ) from exc
        added = await for_staff(services, Library, staff).import_rows("items", checked)
        return _done(f"{added} items imported", imported=added)

    @routes.get("/items/{item_id}/label.pdf")
    async def label(item_id: str, staff: Staff = volunteer) -> Response:
        library = for_staff(services, Library, staff)
        code = await library.label(item_id[:32])
        item = await library.item(item_id[:32])
        pages = await asyncio.to_thread(
            label_pages, [LabelCard(item.item_id, item.name, code.code)]
        )
        return _pdf(await asyncio.to_thread(pdf_bytes, pages), f"label-{item.item_id}.pdf")

    @routes.get("/labels.pdf")
    async def labels(
        staff: Staff = volunteer,
        q: str = "",
        shelf: str = "",
        page_no: int = 1,
    ) -> Response:
        # A sheet of what the library page shows (its search and page): up to 50 labels.
        library = for_staff(services, Library, staff)
        found = await browse.items(q[:80], shelf[:32], page_no)
        cards = [
            LabelCard(i.item_id, i.name, (await library.label(i.item_id)).code)
            for i in found.rows[:MAX_LABELS]
            if i.state != "retired"
        ]
        if not cards:
            raise RefusedError(Refusal.NOT_FOUND, "no items to print")
        pages = await asyncio.to_thread(label_pages, cards)
        return _pdf(await asyncio.to_thread(pdf_bytes, pages), "labels.pdf")

    @routes.post("/items/{item_id}/reprint")
    async def reprint(item_id: str, staff: Staff = volunteer) -> dict[str, Any]:
        label = await for_staff(services, Library, staff).reprint_label(item_id[:32])
        return _done(f"{item_id} label version {label.version}; the old label stops working")

    @routes.post("/items/{item_id}/state")
    async def item_state(
        item_id: str,
        state: Annotated[Literal["available", "maintenance", "retired"], Form()],
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        await for_staff(services, Library, staff).edit_item(item_id[:32], {"state": state})
        return _done(f"{item_id} is now {state}")

    # -- members (volunteer) -----------------------------------------------------------------

    @routes.post("/members/{member_id}/invite")
    async def invite(
        member_id: str,
        email: Annotated[str, Form(max_length=254)] = "",
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        invitations = MemberInvitations(
            MembersData(parts.hooks),
            parts.store,
            parts.clock,
            parts.mailer,
            parts.members_origin,
            staff.actor,
        )
        out = await invitations.invite(member_id[:32], email.strip() or None)
        message = f"link sent to {out['email']}" if out["status"] == "sent" else out["link"]
        return _done(message)

    @routes.post("/members/{member_id}/edit")
    async def edit_member(
        member_id: str,
        suspended: Annotated[Literal["yes", "no"] | None, Form()] = None,
        checkout_limit: Annotated[int | None, Form(ge=0, le=100)] = None,
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if suspended is not None:
            changes["suspended"] = suspended == "yes"
        if checkout_limit is not None:
            changes["checkout_limit"] = checkout_limit
        if not changes:
            raise RefusedError(Refusal.INVALID, "nothing to change")
        await for_staff(services, Library, staff).edit_member(member_id[:32], changes)
        return _done(f"{member_id} updated")

    @routes.post("/members/{member_id}/card.pdf")
    async def pass_card(member_id: str, staff: Staff = volunteer) -> Response:
        library = for_staff(services, Library, staff)
        member = await library.member(member_id[:32])
        issued = await library.issue_pass(member.member_id, None)
        card = await asyncio.to_thread(
            pass_image, issued.code, member.name, member.member_id, issued.expires_at
        )
        return _pdf(await asyncio.to_thread(pdf_bytes, [card]), f"pass-{member.member_id}.pdf")

    @routes.post("/members/{member_id}/training")
    async def record_training(
        member_id: str,
        category: Annotated[str, Form(min_length=1, max_length=40)],
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        await for_staff(services, Circulation, staff).record_training(member_id[:32], category)
        return _done(f"{member_id} trained for {category}")

    @routes.post("/members/{member_id}/agreement")
    async def accept_agreement(member_id: str, staff: Staff = volunteer) -> dict[str, Any]:
        version = await for_staff(services, Circulation, staff).accept_agreement(member_id[:32])
        return _done(f"{member_id} signed the lending agreement (version {version})")

    @routes.post("/items/{item_id}/category")
    async def file_item(
        item_id: str,
        category: Annotated[str, Form(max_length=40)] = "",
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        await for_staff(services, Circulation, staff).file_item(item_id[:32], category or None)
        return _done(f"{item_id} filed under {category or 'the default policy'}")

    # -- circulation (volunteer) -------------------------------------------------------------

    @routes.post("/holds")
    async def place_hold(
        item_id: Annotated[str, Form(max_length=32)],
        member_id: Annotated[str, Form(max_length=32)],
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        hold = await for_staff(services, Circulation, staff).place_hold(item_id, member_id)
        return _done(f"hold {hold.hold_id} placed: {member_id} waits for {item_id}")

    @routes.post("/holds/{hold_id}/cancel")
    async def cancel_hold(hold_id: int, staff: Staff = volunteer) -> dict[str, Any]:
        await for_staff(services, Circulation, staff).cancel_hold(hold_id)
        return _done(f"hold {hold_id} cancelled")

    @routes.post("/holds/{hold_id}/told")
    async def tell_hold(
        hold_id: int,
        how: Annotated[str, Form(max_length=80)] = "",
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        told = how.strip() or "by staff"
        await for_staff(services, Circulation, staff).hold_told(hold_id, told)
        return _done(f"hold {hold_id}: member told ({told}); the hold's clock runs")

    @routes.post("/tickets/{ticket_id}/close")
    async def close_ticket(
        ticket_id: int,
        back_in_service: Annotated[Literal["yes", "no"], Form()] = "yes",
        staff: Staff = volunteer,
    ) -> dict[str, Any]:
        await for_staff(services, Circulation, staff).close_ticket(
            ticket_id, back_in_service=back_in_service == "yes"
        )
        where = "back on its shelf" if back_in_service == "yes" else "kept in maintenance"
        return _done(f"ticket {ticket_id} closed; the item is {where}")

    # -- fleet (admin) -----------------------------------------------------------------------

    @routes.post("/kiosks/{kiosk_id}/identify")
    async def identify(kiosk_id: str, staff: Staff = admin) -> dict[str, Any]:
        out = await for_staff(services, Kiosks, staff).identify(kiosk_id[:32])
        return _done(f"{kiosk_id} flashing" + ("" if out.online else " (offline now)"))

    @routes.post("/kiosks/{kiosk_id}/block")
    async def block(
        kiosk_id: str,
        reason: Reason,
        minutes: Annotated[int | None, Form(ge=1, le=525_600)] = None,
        staff: Staff = admin,
    ) -> dict[str, Any]:
        until = await for_staff(services, SecurityActions, staff).block_kiosk(
            kiosk_id[:32], minutes, reason
        )
        return _done(f"{kiosk_id} blocked until {until:%Y-%m-%d %H:%M}")

    @routes.post("/kiosks/{kiosk_id}/unblock")
    async def unblock(kiosk_id: str, reason: Reason, staff: Staff = admin) -> dict[str, Any]:
        await for_staff(services, SecurityActions, staff).unblock_kiosk(kiosk_id[:32], reason)
        return _done(f"{kiosk_id} unblocked")

    @routes.post("/kiosks/{kiosk_id}/configure")
    async def configure(
        kiosk_id: str,
        shelf_id: Annotated[str, Form(max_length=32)] = "",
        session_timeout_s: Annotated[float | None, Form(gt=0, le=3600)] = None,
        return_point: Annotated[Literal["yes", "no"] | None, Form()] = None,
        staff: Staff = admin,
    ) -> dict[str, Any]:
        given: dict[str, Any] = {}
        if shelf_id:
            given["shelf_id"] = shelf_id
        if session_timeout_s is not None:
            given["session_timeout_s"] = session_timeout_s
        if return_point is not None:
            given["return_point"] = return_point == "yes"
        try:
            patch = ConfigPatch(**given)
        except ValidationError as exc:
            raise RefusedError(Refusal.INVALID, exc.errors()[0]["msg"]) from exc
        config = await for_staff(services, Kiosks, staff).configure(kiosk_id[:32], patch)
        return _done(f"{kiosk_id} configuration version {config.config_version}")

    @routes.post("/kiosks/{kiosk_id}/retire")
    async def retire(
        kiosk_id: str, reason: Reason, confirm: Confirm, staff: Staff = admin
    ) -> dict[str, Any]:
        await for_staff(services, KioskEnrolment, staff).retire(kiosk_id[:32], reason)
        return _done(f"{kiosk_id} retired")

    @routes.post("/enrol")
    async def enrol_code(
        kiosk_id: Annotated[str, Form(max_length=32)],
        shelf_id: Annotated[str, Form(max_length=32)],
        ttl_s: Annotated[int, Form(ge=60, le=86_400)] = 900,
        staff: Staff = admin,
    ) -> dict[str, Any]:
        enrolment = for_staff(services, KioskEnrolment, staff)
        code = await enrolment.enrolment_code(kiosk_id, shelf_id, ttl_s)
        # The QR drawn here as inline SVG: the laptop's screen is the printed PNG of old.
        svg = make_qr(code.code).svg_inline(scale=8, border=4, dark="#000", light="#fff")
        return _done(
            f"show this to {code.kiosk_id}'s camera before {code.expires_at:%H:%M} UTC",
            qr=svg,
            kiosk_id=code.kiosk_id,
        )

    # -- operations (admin) ------------------------------------------------------------------

    def rollout() -> RolloutControl:
        control = services.get(RolloutControl)
        if not isinstance(control, RolloutControl):
            raise RefusedError(Refusal.CONFLICT, "no rollout flag on this central")
        return control

    @routes.post("/flag")
    async def set_flag(
        mode: Annotated[Literal["off", "on"], Form()],
        reason: Reason,
        confirm: Confirm,
        staff: Staff = admin,
    ) -> dict[str, Any]:
        changed = await rollout().set_flag(FlagSetting(FlagMode(mode)), reason, staff.account.name)
        return _done(f"checkout {mode}; {changed.kiosks_told} kiosks told")

    @routes.post("/kill")
    async def kill(reason: Reason, confirm: Confirm, staff: Staff = admin) -> dict[str, Any]:
        changed = await rollout().kill(reason, staff.account.name)
        return _done(f"kill switch thrown; {changed.kiosks_told} kiosks told")

    @routes.post("/breaker/reset")
    async def reset(reason: Reason, confirm: Confirm, staff: Staff = admin) -> dict[str, Any]:
        await rollout().reset_breaker(reason, staff.account.name)
        return _done("breaker released; the flag stays as it is")

    @routes.post("/audit/verify")
    async def verify(staff: Staff = admin) -> dict[str, Any]:
        report = await for_staff(services, AuditLog, staff).verify()
        if report.intact:
            return _done(f"audit chain intact: {report.checked} rows checked")
        return {
            "ok": False,
            "message": f"chain broken at row {report.broken_seq}: {report.problem}",
        }

    @routes.get("/audit/export")
    async def export(staff: Staff = admin) -> StreamingResponse:
        rows: AsyncIterator[bytes] = for_staff(services, AuditLog, staff).export(None, None)
        return StreamingResponse(
            rows,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
        )

    @routes.post("/staff/invite")
    async def invite_staff(
        email: Annotated[str, Form(max_length=254)],
        name: Annotated[Text, Form(max_length=80)] = "",
        role: Annotated[Role, Form()] = Role.VOLUNTEER,
        staff: Staff = admin,
    ) -> dict[str, Any]:
        accounts = dataclasses.replace(parts.staff, actor=staff.actor)
        invited = await accounts.invite(email, name, role)
        return _done(f"{invited.email} invited as {invited.role.value}")

    return routes
