"""Paged, searchable listings on the admin API: the staff console's own queries, shared."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field

from central.services.browse import Page


class PageOut(BaseModel):
    """One page of rows and how many match in all."""

    rows: list[dict[str, Any]] = Field(description="This page's rows.")
    total: int = Field(description="Rows matching the search.")
    page: int = Field(description="This page (from 1).")
    pages: int = Field(description="Pages the matches fill.")


def page_out(page: Page) -> PageOut:
    """The API's view of a service page."""
    return PageOut(
        rows=[dataclasses.asdict(r) for r in page.rows],
        total=page.total,
        page=page.page,
        pages=page.pages,
    )
