"""The one place a service's refusal becomes an HTTP answer: a status picked by its reason."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from central.services.refusals import Refusal, RefusedError

STATUS = {
    Refusal.NOT_FOUND: 404,
    Refusal.INVALID: 422,
    Refusal.CONFLICT: 409,
    Refusal.MEMBER_SUSPENDED: 409,
    Refusal.FORBIDDEN: 403,
    Refusal.RATE_LIMITED: 429,
    Refusal.UNCONFIRMED: 503,
}


def install(app: FastAPI) -> None:
    """Answer every :class:`RefusedError` as ``{"detail": ...}`` with its reason's status."""

    @app.exception_handler(RefusedError)
    async def refused(_request: Request, exc: RefusedError) -> JSONResponse:
        headers = None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse(
            {"detail": exc.detail}, status_code=STATUS[exc.refusal], headers=headers
        )
