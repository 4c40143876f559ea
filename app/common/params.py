"""What a route reads from its URL, as both services read it: an id in the path, and the paging
query of a list.

Paging: every list answers `limit` rows at a time (DEFAULT_PAGE unless given, at most MAX_PAGE),
in an order its route names; `after` is the `id` of the last row of the page before (keyset
paging: rows added or removed between two pages make nobody skipped or repeated)."""

from typing import Annotated

from fastapi import Path, Query

from app.common.models import MAX_ID, Id

# An id in a route's path (`/sections/{section_id}`): as `Id`, a 422 naming it otherwise.
PathId = Annotated[int, Path(gt=0, le=MAX_ID)]

DEFAULT_PAGE, MAX_PAGE = 100, 1000

PageLimit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_PAGE,
        description=f"Rows per page: {DEFAULT_PAGE} unless given, at most {MAX_PAGE}.",
    ),
]
After = Annotated[
    Id | None,
    Query(
        description="For the next page, the `id` of the last row of this one: the page starts"
        " after that row, in this list's order. Omit it for the first page. A page with fewer"
        " rows than `limit` is the last."
    ),
]
