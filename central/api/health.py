"""Readiness for load balancers and operators: database, broker, backlog, a stalled consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from central.storage.base import Store


def router(
    store: Store,
    broker_up: Callable[[], bool],
    queue_depth: Callable[[], int],
    *,
    max_queue: int,
    db_timeout_s: float,
    stalled_s: Callable[[], float] = lambda: 0.0,
    max_stall_s: float = 10.0,
) -> APIRouter:
    """``GET /ready``: 200 when this instance can decide scans, else 503 saying why.

    Open like ``/health``: it tells up or down and a queue length, never library data,
    and a probe should not need the admin token.
    """
    api = APIRouter(tags=["health"])

    @api.get("/ready")
    async def ready() -> JSONResponse:
        problems: list[str] = []
        checks: dict[str, Any] = {}
        try:
            async with asyncio.timeout(db_timeout_s):
                await store.ping()
            checks["database"] = "ok"
        except TimeoutError:
            checks["database"] = f"no answer in {db_timeout_s:g} s"
            problems.append(f"database: {checks['database']}")
        except Exception as exc:  # any failure to answer means not ready, said plainly
            checks["database"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            problems.append(f"database: {checks['database']}")
        checks["broker"] = "connected" if broker_up() else "disconnected"
        if checks["broker"] != "connected":
            problems.append("broker: disconnected")
        depth = queue_depth()
        checks["queue_depth"] = depth
        if depth > max_queue:
            problems.append(f"queue: {depth} scans waiting (more than {max_queue})")
        # A consumer stuck on one batch (a retried fault, a locked database) with scans
        # waiting is not deciding, however short its queue and however well the database
        # answers a ping.
        stalled = stalled_s()
        checks["consumer_stalled_s"] = round(stalled, 1)
        if stalled > max_stall_s:
            problems.append(
                f"consumer: {depth} scans waiting, none decided for {stalled:.0f} s"
                f" (more than {max_stall_s:g})"
            )
        body = {"ready": not problems, "checks": checks, "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503)

    return api
