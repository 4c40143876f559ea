"""Eligibility's routes: prerequisites, the import of completed courses, credit limits, holds
and permits."""

from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from app.common.errors import Invalid
from app.common.identity import REGISTRAR
from app.common.params import DEFAULT_PAGE, After, PageLimit, PathId
from app.enrollment.catalog.models import CourseOut
from app.enrollment.deps import Caller, Db
from app.enrollment.eligibility import completed, service
from app.enrollment.eligibility.models import (
    CompletedCourse,
    CreditLimitIn,
    HoldIn,
    HoldOut,
    ImportOut,
    PermitIn,
    PermitOut,
    PrerequisitesIn,
)
from app.enrollment.people.models import UserOut
from app.enrollment.routing import ANY_ROLE, SELF, STAFF, Routes
from app.enrollment.sql import Row

route = Routes()


# prerequisites and completed courses


@route(
    "GET",
    "/courses/{course_id}/prerequisites",
    ANY_ROLE,
    refuses={404: ["not_found"]},
    response_model=list[CourseOut],
)
async def course_prerequisites(course_id: PathId, db: Db, _: Caller) -> list[Row]:
    """The courses a student must have completed before taking this one, in code order."""
    return db.read(service.course_prerequisites, course_id)


@route(
    "PUT",
    "/courses/{course_id}/prerequisites",
    (REGISTRAR,),
    refuses={404: ["not_found"], 409: ["prerequisite_cycle"]},
    response_model=list[CourseOut],
)
async def set_prerequisites(
    course_id: PathId, body: PrerequisitesIn, db: Db, who: Caller
) -> list[Row]:
    """Replace a course's prerequisites (409 `prerequisite_cycle` for a loop)."""
    return await db.write(service.set_prerequisites, who, course_id, body.course_ids)


# The CSV import's body limit: the most rows it takes (completed.MAX_IMPORT_ROWS, 50,000), as a
# record system exports them ("104523,CPSC 449,2025-FA,A-", about 30 bytes with CRLF: 1.5 MB),
# fit with room to spare (84 bytes a row on average: long term names, quoting). One file is one
# all-or-nothing import of a term's grades: splitting it into 64 KiB pieces would lose that.
CSV_MAX_BODY_BYTES = 4 * 1024 * 1024


async def _csv_rows(request: Request) -> completed.CompletedRows:
    """The request's CSV, read (after the caller's check) and parsed before the write turn, in a
    worker thread: 50,000 rows take a quarter of a second to parse, which neither the other
    writers nor this instance's event loop should wait for (the write turn then takes 0.15 s)."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("the CSV must be UTF-8 text", code="csv_encoding") from exc
    return await run_in_threadpool(completed.parse_completed, text)


CsvRows = Annotated[completed.CompletedRows, Depends(_csv_rows)]


@route(
    "POST",
    "/completed-courses",
    (REGISTRAR,),
    refuses={422: ["csv_encoding", "csv_header", "csv_too_long", "csv_empty", "csv_rows"]},
    max_body_bytes=CSV_MAX_BODY_BYTES,
    response_model=ImportOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "user_id,course_code,term,grade\n9,CPSC 131,2025-FA,A\n",
                }
            },
        }
    },
)
async def import_completed(db: Db, who: Caller, rows: CsvRows) -> dict[str, int]:
    """Import students' completed courses as CSV (header `user_id,course_code[,term][,grade]`,
    UTF-8, a byte order mark allowed, at most 50,000 rows and 4 MiB): every row or none; a bad
    row (malformed, a control character, repeated, an unknown user or course) is a 422 naming
    its line."""
    return await db.write(completed.import_completed, who, rows)


@route(
    "GET",
    "/users/{user_id}/completed-courses",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[CompletedCourse],
)
async def user_completed(
    user_id: PathId, db: Db, who: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
) -> list[Row]:
    """The courses a user has completed, in course id order, a page at a time."""
    return db.read(service.user_completed, who, user_id, after=after, limit=limit)


# credit limits, holds and permits


@route(
    "PUT",
    "/users/{user_id}/credit-limit",
    (REGISTRAR,),
    refuses={404: ["not_found"]},
    response_model=UserOut,
)
async def set_credit_limit(user_id: PathId, body: CreditLimitIn, db: Db, who: Caller) -> Row:
    """Set one student's credit limit (null: the default, 18)."""
    return await db.write(service.set_credit_limit, who, user_id, body.credit_limit)


@route(
    "GET",
    "/users/{user_id}/holds",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[HoldOut],
)
async def user_holds(
    user_id: PathId, db: Db, who: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
) -> list[Row]:
    """A user's holds, lifted ones too, in id order, a page at a time."""
    return db.read(service.user_holds, who, user_id, after=after, limit=limit)


@route("GET", "/holds", (REGISTRAR,), response_model=list[HoldOut])
async def all_holds(
    db: Db,
    _: Caller,
    open_only: Annotated[
        bool,
        Query(
            alias="open",
            description="Holds not lifted yet (true, the default) or lifted ones (false)",
        ),
    ] = True,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """Every student's holds, open ones unless `open=false`, newest first, a page at a time."""
    return db.read(service.all_holds, open_only=open_only, after=after, limit=limit)


@route(
    "POST",
    "/users/{user_id}/holds",
    (REGISTRAR,),
    refuses={404: ["not_found"]},
    response_model=HoldOut,
    status_code=201,
)
async def place_hold(user_id: PathId, body: HoldIn, db: Db, who: Caller) -> Row:
    """Place a hold: the student cannot enroll or join a waitlist until it is lifted."""
    return await db.write(service.place_hold, who, user_id, body.reason)


@route(
    "DELETE",
    "/users/{user_id}/holds/{hold_id}",
    (REGISTRAR,),
    refuses={404: ["not_found"], 409: ["hold_lifted"]},
    response_model=HoldOut,
)
async def lift_hold(user_id: PathId, hold_id: PathId, db: Db, who: Caller) -> Row:
    """Lift a hold (it stays listed, with who lifted it and when)."""
    return await db.write(service.lift_hold, who, user_id, hold_id)


@route(
    "GET",
    "/users/{user_id}/permits",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[PermitOut],
)
async def user_permits(
    user_id: PathId, db: Db, who: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
) -> list[Row]:
    """A user's permits, revoked ones too, in id order, a page at a time."""
    return db.read(service.user_permits, who, user_id, after=after, limit=limit)


@route(
    "GET",
    "/sections/{section_id}/permits",
    STAFF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[PermitOut],
)
async def section_permits(
    section_id: PathId,
    db: Db,
    who: Caller,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """A section's permits, revoked ones too, in id order, a page at a time."""
    return db.read(service.section_permits, who, section_id, after=after, limit=limit)


@route(
    "POST",
    "/sections/{section_id}/permits",
    STAFF,
    refuses={403: ["forbidden"], 404: ["not_found"], 409: ["not_a_student"]},
    response_model=PermitOut,
    status_code=201,
)
async def grant_permit(section_id: PathId, body: PermitIn, db: Db, who: Caller) -> Row:
    """Let one student past the named rules of this section (its registrar or instructor)."""
    return await db.write(service.grant_permit, who, section_id, body.user_id, list(body.waives))


@route(
    "DELETE",
    "/sections/{section_id}/permits/{permit_id}",
    STAFF,
    refuses={403: ["forbidden"], 404: ["not_found"], 409: ["permit_revoked"]},
    response_model=PermitOut,
)
async def revoke_permit(section_id: PathId, permit_id: PathId, db: Db, who: Caller) -> Row:
    """Revoke a permit: it waives nothing more (a place it gave stays)."""
    return await db.write(service.revoke_permit, who, section_id, permit_id)
