"""What an edit changed, as the admin API answers it: the changed fields before and after."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from central.storage.base import Edited


class EditOut(BaseModel):
    """What an edit changed: the fields before and after (empty when nothing changed)."""

    before: dict[str, Any]
    after: dict[str, Any]


def diff(edited: Edited[Any]) -> EditOut:
    """Only the fields the edit changed."""
    before, after = edited.before, edited.after
    fields = [f for f in before.__slots__ if getattr(before, f) != getattr(after, f)]
    return EditOut(
        before={f: getattr(before, f) for f in fields}, after={f: getattr(after, f) for f in fields}
    )
