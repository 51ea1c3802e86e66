"""Bulk imports over HTTP: the body parsed a slice at a time, every bad row reported (422)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from central.services.library import Library

# One import is one file; past this a file should be split (and it is a typo).
MAX_IMPORT_ROWS = 20_000
# Rows validated per call: about a millisecond of GIL each, so the loop is never held long.
_VALIDATE_SLICE = 250


class ImportIn(BaseModel):
    """An import's envelope; each row is checked against its kind's model (ShelfIn, ItemIn,
    MemberIn) a slice at a time."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Any] = Field(max_length=MAX_IMPORT_ROWS, description="The new rows.")


class ImportOut(BaseModel):
    """How many rows one import added."""

    kind: str
    imported: int


def parse_import(row_model: type[BaseModel], body: bytes) -> list[dict[str, Any]]:
    """The rows of an import body ``{"rows": [...]}``, every bad one reported (422)."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "not JSON", "type": "json_invalid"}]
        ) from exc
    envelope = ImportIn.model_validate(data) if isinstance(data, dict) else None
    if envelope is None:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "expected an object", "type": "dict_type"}]
        )
    adapter: TypeAdapter[list[BaseModel]] = TypeAdapter(list[row_model])  # type: ignore[valid-type]  # a model class given at run time
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for start in range(0, len(envelope.rows), _VALIDATE_SLICE):
        try:
            part = adapter.validate_python(envelope.rows[start : start + _VALIDATE_SLICE])
        except ValidationError as exc:
            for e in exc.errors():
                errors.append(
                    {**e, "loc": ("body", "rows", start + int(e["loc"][0]), *e["loc"][1:])}
                )
            continue
        rows += [r.model_dump() for r in part]
        time.sleep(0)  # hand the GIL to the event loop between slices
    if errors:
        raise RequestValidationError(errors)
    return rows


async def import_rows(
    library: Library, kind: str, row_model: type[BaseModel], request: Request
) -> ImportOut:
    """Parse an import request's rows and add them all, or none."""
    # Up to 20,000 rows: parsed and checked on a worker thread in slices (pydantic holds
    # the GIL for a whole call), so the event loop and every scan's verdict keep going.
    rows = await asyncio.to_thread(parse_import, row_model, await request.body())
    return ImportOut(kind=kind, imported=await library.import_rows(kind, rows))
