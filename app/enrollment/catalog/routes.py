"""The catalog's routes: courses and sections, listed, searched, read and created."""

from typing import Annotated

from fastapi import Query

from app.common.identity import REGISTRAR
from app.common.models import Id
from app.common.params import DEFAULT_PAGE, After, PageLimit, PathId
from app.enrollment.catalog import queries, service
from app.enrollment.catalog.models import CourseCreate, CourseOut, SectionCreate, SectionOut
from app.enrollment.deps import AppSettings, Caller, Db
from app.enrollment.people import directory
from app.enrollment.routing import ANY_ROLE, Routes
from app.enrollment.sql import Row

route = Routes()


# How long the enroll gateway may answer a catalog listing from its cache: on registration day
# everyone reloads the section list, and the same answer for every caller is computed once per
# instance in this window instead of once per click. The listings' seat counts may be this much
# behind; a section's own page (GET /sections/{id}) and every write stay live, and an enrollment's
# answer is decided in its own transaction whatever a listing said.
CATALOG_CACHE_SECONDS = 2


@route(
    "GET",
    "/courses",
    ANY_ROLE,
    cache_seconds=CATALOG_CACHE_SECONDS,
    response_model=list[CourseOut],
)
async def list_courses(
    db: Db, _: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
) -> list[Row]:
    """The courses of the catalog in code order, a page at a time."""
    return db.read(queries.list_courses, after=after, limit=limit)


@route(
    "GET", "/courses/{course_id}", ANY_ROLE, refuses={404: ["not_found"]}, response_model=CourseOut
)
async def get_course(course_id: PathId, db: Db, _: Caller) -> Row:
    """One course."""
    return db.read(service.get_course_or_404, course_id)


@route(
    "POST",
    "/courses",
    (REGISTRAR,),
    refuses={404: ["not_found"], 409: ["course_exists"]},
    response_model=CourseOut,
    status_code=201,
)
async def create_course(body: CourseCreate, db: Db, who: Caller) -> Row:
    """Add a course to the catalog."""
    return await db.write(service.create_course, who, body)


@route(
    "GET",
    "/sections",
    ANY_ROLE,
    refuses={404: ["not_found"]},
    cache_seconds=CATALOG_CACHE_SECONDS,
    response_model=list[SectionOut],
)
async def list_sections(
    db: Db,
    _: Caller,
    course_id: Annotated[Id | None, Query()] = None,
    term_id: Annotated[Id | None, Query(description="only the sections of this term")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            # No control characters: SQLite would end the LIKE pattern at a NUL (matching all).
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="only sections whose course code or title contains this (any case)",
        ),
    ] = None,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[Row]:
    """Live sections, optionally of one course, of one term or matching a search, in course code
    and section number order, a page at a time."""
    return db.read(
        service.list_sections, course_id=course_id, term_id=term_id, search=q, after=after,
        limit=limit,
    )  # fmt: skip


@route(
    "GET",
    "/sections/{section_id}",
    ANY_ROLE,
    refuses={404: ["not_found"]},
    response_model=SectionOut,
)
async def get_section(section_id: PathId, db: Db, _: Caller) -> Row:
    """One live section with its seat and waitlist counts."""
    return db.read(service.get_section_or_404, section_id)


@route(
    "POST",
    "/sections",
    (REGISTRAR,),
    refuses={404: ["not_found"], 409: ["not_an_instructor", "section_exists"]},
    response_model=SectionOut,
    status_code=201,
)
async def create_section(body: SectionCreate, db: Db, who: Caller, settings: AppSettings) -> Row:
    """Open a new section of a course."""
    if body.instructor_id is not None:  # that account as the auth service has it now
        await directory.make_current(db, settings, body.instructor_id)
    return await db.write(service.create_section, who, body)
