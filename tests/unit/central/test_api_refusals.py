"""Every reason a service refuses with has its HTTP status, so no refusal answers 500."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from central.api import refusals
from central.services.refusals import Refusal, RefusedError


async def test_each_refusal_reason_answers_with_its_status_and_detail() -> None:
    app = FastAPI()
    refusals.install(app)

    @app.get("/refuse/{reason}")
    async def refuse(reason: str) -> None:
        raise RefusedError(Refusal(reason), f"refused: {reason}")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for reason in Refusal:
            response = await client.get(f"/refuse/{reason.value}")
            assert (response.status_code, response.json()) == (
                refusals.STATUS[reason],
                {"detail": f"refused: {reason.value}"},
            )
