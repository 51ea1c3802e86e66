"""Readiness for load balancers and operators: database, broker and backlog, with reasons."""

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
        body = {"ready": not problems, "checks": checks, "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503)

    return api
