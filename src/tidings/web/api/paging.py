"""Cursor pagination: lists page by id, and ``next_cursor`` names where the next page starts.

Clients pass the cursor back as they got it; its form is documented in the OpenAPI schema so
that every string the schema allows is a cursor this API understands.
"""

from typing import Annotated

from fastapi import Query

from tidings.web.deps import MAX_ROW_ID

Cursor = Annotated[
    str | None,
    Query(pattern=r"^c[0-9]{1,18}$", description="next_cursor of the previous page"),
]
Limit = Annotated[int, Query(ge=1, le=200, description="items per page")]


def encode(last_id: int | None) -> str | None:
    return f"c{last_id}" if last_id else None


def decode(cursor: str | None) -> int:
    """The id to continue after; a cursor past every id gives an empty page."""
    return min(int(cursor[1:]), MAX_ROW_ID) if cursor else 0
