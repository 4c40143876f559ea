"""The enrollments' routes. Registration day's requests (bench/rush.py: enroll, drop, leave a
waitlist, list one's sections) come first: the app tries routes in order, this room's first
(app/enrollment/routes.py), so those requests match without trying twenty others; no path matches
two templates (tests/enrollment/test_routes_order.py), so the order changes nothing else."""

from typing import Annotated

from fastapi import Query, Response

from app.common.identity import REGISTRAR, STUDENT
from app.common.params import DEFAULT_PAGE, After, PageLimit, PathId
from app.enrollment.catalog.models import SectionOut, SectionUpdate
from app.enrollment.deps import AppSettings, Caller, Db
from app.enrollment.enrollments import service, swaps
from app.enrollment.enrollments.models import (
    DropOut,
    EnrollIn,
    EnrollmentOut,
    EnrollmentStatus,
    OwnWaitlistEntry,
    RosterStatus,
    SectionChange,
    SectionsType,
    SwapIn,
    SwapOut,
    WaitlistEntry,
)
from app.enrollment.people import directory
from app.enrollment.routing import SELF, STAFF, Routes
from app.enrollment.sql import Row

route = Routes()

# What refuses a student a place in a section (`service.take_place`), the eligibility rules in the
# order they are checked (`eligibility_refusal`): an enroll's refusals, and a swap's add's.
PLACE_REFUSALS = [
    "already_enrolled",
    "already_waitlisted",
    "not_a_student",
    "hold",
    "add_deadline_passed",
    "registration_window_closed",
    "prerequisite_missing",
    "time_conflict",
    "credit_limit",
    "waitlist_full",
    "waitlist_limit_reached",
]


# a student's own (registration day's)


@route(
    "POST",
    "/users/{user_id}/enrollments",
    (STUDENT, REGISTRAR),
    refuses={403: ["forbidden"], 404: ["not_found"], 409: PLACE_REFUSALS},
    response_model=EnrollmentOut,
    status_code=201,
)
async def enroll(user_id: PathId, body: EnrollIn, db: Db, who: Caller) -> Row:
    """Enroll in a section: a seat if one is free and nobody waits, else the waitlist."""
    return await db.write(service.enroll, who, user_id, body)


@route(
    "DELETE",
    "/users/{user_id}/enrollments/{section_id}",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"], 409: ["drop_deadline_passed"]},
    response_model=DropOut,
)
async def drop(user_id: PathId, section_id: PathId, db: Db, who: Caller) -> Row:
    """Drop a section; the head of its waitlist takes the seat unless the section is frozen."""
    return await db.write(service.drop, who, user_id, section_id)


@route(
    "DELETE",
    "/users/{user_id}/waitlist/{section_id}",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"], 409: ["drop_deadline_passed"]},
    response_model=DropOut,
)
async def leave_waitlist(user_id: PathId, section_id: PathId, db: Db, who: Caller) -> Row:
    """Leave a section's waitlist; everyone behind moves up one place."""
    return await db.write(service.leave_waitlist, who, user_id, section_id)


@route(
    "GET",
    "/users/{user_id}/sections",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[SectionOut],
)
async def user_sections(
    user_id: PathId,
    db: Db,
    who: Caller,
    type: Annotated[SectionsType, Query()] = "all",
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """Sections a user is enrolled in, instructs, or both, in course code and section number
    order, a page at a time."""
    return db.read(service.user_sections, who, user_id, type, after=after, limit=limit)


@route(
    "GET",
    "/users/{user_id}/enrollments",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[EnrollmentOut],
)
async def user_enrollments(
    user_id: PathId,
    db: Db,
    who: Caller,
    status: Annotated[EnrollmentStatus | None, Query()] = None,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """A user's enrollments, optionally filtered by status, in id order, a page at a time."""
    return db.read(service.user_enrollments, who, user_id, status, after=after, limit=limit)


@route(
    "GET",
    "/users/{user_id}/waitlist",
    SELF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[OwnWaitlistEntry],
)
async def user_waitlist(
    user_id: PathId, db: Db, who: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
) -> list[Row]:
    """The waitlists a user is on, with their position in each and the latest time a promotion
    passed them over there (and why), by section id, a page at a time."""
    return db.read(service.user_waitlist, who, user_id, after=after, limit=limit)


@route(
    "POST",
    "/users/{user_id}/swaps",
    (STUDENT, REGISTRAR),
    refuses={
        403: ["forbidden"],
        404: ["not_found"],
        409: ["drop_deadline_passed", *PLACE_REFUSALS, "no_seat_free"],
    },
    response_model=SwapOut,
)
async def swap(user_id: PathId, body: SwapIn, db: Db, who: Caller) -> Row:
    """Switch sections: drop one and take a place in another in one transaction, or change
    nothing and answer the add's refusal. A waitlist place counts only with `waitlist_ok`."""
    return await db.write(swaps.swap, who, user_id, body)


# a section's, for its staff


@route(
    "GET",
    "/sections/{section_id}/enrollments",
    STAFF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[EnrollmentOut],
)
async def section_enrollments(
    section_id: PathId,
    db: Db,
    who: Caller,
    status: Annotated[RosterStatus, Query()] = "enrolled",
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """A section's roster, a page at a time: its current students (status `enrolled`) unless
    `status` asks for the waitlisted, the dropped, or `all` rows."""
    wanted = None if status == "all" else status
    return db.read(service.section_roster, who, section_id, wanted, after=after, limit=limit)


@route(
    "GET",
    "/sections/{section_id}/waitlist",
    STAFF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[WaitlistEntry],
)
async def section_waitlist(
    section_id: PathId,
    db: Db,
    who: Caller,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """A section's waitlist in position order, a page at a time."""
    return db.read(service.section_waitlist, who, section_id, after=after, limit=limit)


@route(
    "DELETE",
    "/sections/{section_id}/enrollments/{user_id}",
    STAFF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=DropOut,
)
async def administrative_drop(section_id: PathId, user_id: PathId, db: Db, who: Caller) -> Row:
    """Drop a student from a section (or its waitlist) on the staff's authority."""
    return await db.write(service.administrative_drop, who, section_id, user_id)


@route(
    "GET",
    "/courses/{course_id}/waitlist",
    STAFF,
    refuses={403: ["forbidden"], 404: ["not_found"]},
    response_model=list[WaitlistEntry],
)
async def course_waitlist(
    course_id: PathId,
    db: Db,
    who: Caller,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """Waitlists of a course's sections, by section id then position, a page at a time (an
    instructor sees only the sections they teach)."""
    return db.read(service.course_waitlist, who, course_id, after=after, limit=limit)


# a section's changes (SPEC §2 rules 6-8), and what they do to its seats


@route(
    "PATCH",
    "/sections/{section_id}",
    (REGISTRAR,),
    refuses={
        404: ["not_found"],
        409: ["not_an_instructor", "capacity_below_enrollment", "waitlist_capacity_below_waitlist"],
    },
    response_model=SectionChange,
)
async def update_section(
    section_id: PathId, body: SectionUpdate, db: Db, who: Caller, settings: AppSettings
) -> Row:
    """Freeze/unfreeze, reassign, or resize a section; says who was promoted as a result."""
    if body.instructor_id is not None:  # that account as the auth service has it now
        await directory.make_current(db, settings, body.instructor_id)
    return await db.write(service.update_section, who, section_id, body)


@route(
    "DELETE", "/sections/{section_id}", (REGISTRAR,), refuses={404: ["not_found"]}, status_code=204
)
async def delete_section(section_id: PathId, db: Db, who: Caller) -> Response:
    """Remove a section from the catalog (its history stays in the database)."""
    await db.write(service.delete_section, who, section_id)
    return Response(status_code=204)
