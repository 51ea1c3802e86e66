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
}


def install(app: FastAPI) -> None:
    """Answer every :class:`RefusedError` as ``{"detail": ...}`` with its reason's status."""

    @app.exception_handler(RefusedError)
    async def refused(_request: Request, exc: RefusedError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=STATUS[exc.refusal])
