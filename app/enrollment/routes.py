"""HTTP routes of the enrollment service: thin wrappers over `service`.

Every route runs on the event loop, without a thread hop. A read is `db.read(fn, ...)`, on a
pooled connection that never waits for a lock in WAL mode (and cannot write). A write is
`await db.write(fn, ...)`: `fn` gets its BEGIN IMMEDIATE transaction in this instance's write turn
(the queue of the three instances' writers on one lock file), run back to back with the writes
queued meanwhile, and the route its answer once the commit is on disk (app/common/db.py
`Database`). What a write must ask elsewhere first (the auth service, for an account the
registrar names) is awaited before it.

Each route declares the roles the gateway lets through (`x-roles` in the OpenAPI schema) and, for
the catalog listings, how long the gateway may reuse an answer (`x-cache-seconds`); the gateway
config is checked against this table by tests/test_gateway_routes.py.
"""

import inspect
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.common.errors import Invalid, error_responses
from app.common.identity import INSTRUCTOR, REGISTRAR, ROLES, STUDENT
from app.common.models import Id
from app.common.params import DEFAULT_PAGE, After, PageLimit, PathId
from app.enrollment import directory, queries, service
from app.enrollment.deps import AppSettings, Caller, CallerFirst, Db, FromService
from app.enrollment.models import (
    AccountIn,
    AuditAction,
    AuditEntry,
    ClassLevelIn,
    CompletedCourse,
    CourseCreate,
    CourseOut,
    CreditLimitIn,
    DropOut,
    EnrollIn,
    EnrollmentOut,
    EnrollmentStatus,
    HoldIn,
    HoldOut,
    ImportOut,
    PermitIn,
    PermitOut,
    PrerequisitesIn,
    RosterStatus,
    SectionChange,
    SectionCreate,
    SectionOut,
    SectionsType,
    SectionUpdate,
    TermChange,
    TermIn,
    TermOut,
    UserOut,
    WaitlistEntry,
    WindowIn,
    WindowOut,
)

router = APIRouter(route_class=CallerFirst)
Endpoint = TypeVar("Endpoint", bound=Callable[..., Coroutine[Any, Any, Any]])

ANY_ROLE = ROLES
STAFF = (INSTRUCTOR, REGISTRAR)
SELF = ROLES  # object rule: that user, or the registrar

# How long the enroll gateway may answer a catalog listing from its cache: on registration day
# everyone reloads the section list, and the same answer for every caller is computed once per
# instance in this window instead of once per click. The listings' seat counts may be this much
# behind; a section's own page (GET /sections/{id}) and every write stay live, and an enrollment's
# answer is decided in its own transaction whatever a listing said.
CATALOG_CACHE_SECONDS = 2

# The body limits routes declare above the common one (app/common/limits.py), by (method, path):
# app/enrollment/main.py applies them.
BODY_LIMITS: dict[tuple[str, str], int] = {}


def route(
    method: str,
    path: str,
    roles: tuple[str, ...],
    *,
    cache_seconds: int = 0,
    max_body_bytes: int | None = None,
    **kwargs: Any,
) -> Callable[[Endpoint], Endpoint]:
    """Declare a route with the roles allowed to call it (checked by `CallerFirst`, before anything
    else of the request is read) and the errors it can answer. Every route is a coroutine, run
    on the event loop without a thread hop: it reads with `db.read(...)` and writes with
    `await db.write(...)` (app/common/db.py `Database`). A GET whose answer is the same for every
    caller may give `cache_seconds`: its successful answers say `Cache-Control:
    max-age=<seconds>`, which the enroll gateway's cache honours (etc/enroll/settings/
    endpoints.json marks the same routes). A route whose body may be larger than the common
    limit gives `max_body_bytes` (`x-max-body-bytes` in its OpenAPI schema, for the gateway's
    limit)."""
    responses = {
        **error_responses(*_error_statuses(method, path, roles)),
        **kwargs.pop("responses", {}),
    }
    extra: dict[str, Any] = {"x-roles": list(roles), **kwargs.pop("openapi_extra", {})}
    dependencies = list(kwargs.pop("dependencies", []))
    if cache_seconds:
        assert method == "GET", "only a read can be answered from a cache"
        extra["x-cache-seconds"] = cache_seconds
        dependencies.append(Depends(_cacheable_for(cache_seconds)))
    if max_body_bytes is not None:
        assert method != "GET" and "{" not in path, "a body limit is for a write's fixed path"
        extra["x-max-body-bytes"] = BODY_LIMITS[(method, path)] = max_body_bytes
    register = router.api_route(
        path,
        methods=[method],
        openapi_extra=extra,
        responses=responses,
        dependencies=dependencies,
        **kwargs,
    )

    def decorator(endpoint: Endpoint) -> Endpoint:
        assert inspect.iscoroutinefunction(endpoint), f"{endpoint.__name__} runs on the loop"
        return register(endpoint)

    return decorator


def _cacheable_for(seconds: int):
    """A dependency marking a route's successful answer as reusable for `seconds` (an error
    answer is built by the error handler, without this header, so it is never cached)."""
    value = f"max-age={seconds}"

    # async: FastAPI would run a plain `def` dependency in its thread pool, a hop per request.
    async def cacheable(response: Response) -> None:
        response.headers["Cache-Control"] = value

    return cacheable


def _error_statuses(method: str, path: str, roles: tuple[str, ...]) -> list[int]:
    """The error statuses a route can answer, for its OpenAPI schema (FastAPI adds 422 itself)."""
    # 401: no gateway secret or no usable identity. 409: the caller's username belongs to another
    # user id here (checked on every request); on writes, also a rule of SPEC §2.
    statuses = [401, 409]
    if roles != ANY_ROLE or "{user_id}" in path:
        statuses.append(403)  # the role, or the object rule "that user" / "staff of that section"
    if "{" in path or method != "GET":
        statuses.append(404)  # an id in the path or the body that does not exist
    if method in ("POST", "PATCH", "PUT"):
        statuses.append(413)  # app.common.limits.BodySizeLimit
    return sorted(statuses)


def _user_out(row: dict) -> dict:
    return {**row, "roles": row["roles"].split(",")}


# courses


@route(
    "GET",
    "/courses",
    ANY_ROLE,
    cache_seconds=CATALOG_CACHE_SECONDS,
    response_model=list[CourseOut],
)
async def list_courses(db: Db, _: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE):
    """The courses of the catalog in code order, a page at a time."""
    return db.read(queries.list_courses, after=after, limit=limit)


@route("GET", "/courses/{course_id}", ANY_ROLE, response_model=CourseOut)
async def get_course(course_id: PathId, db: Db, _: Caller):
    """One course."""
    return db.read(service.get_course_or_404, course_id)


@route("POST", "/courses", (REGISTRAR,), response_model=CourseOut, status_code=201)
async def create_course(body: CourseCreate, db: Db, who: Caller):
    """Add a course to the catalog."""
    return await db.write(service.create_course, who, body)


@route("GET", "/courses/{course_id}/waitlist", STAFF, response_model=list[WaitlistEntry])
async def course_waitlist(
    course_id: PathId,
    db: Db,
    who: Caller,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
):
    """Waitlists of a course's sections, by section id then position, a page at a time (an
    instructor sees only the sections they teach)."""
    return db.read(service.course_waitlist, who, course_id, after=after, limit=limit)


# sections


@route(
    "GET",
    "/sections",
    ANY_ROLE,
    cache_seconds=CATALOG_CACHE_SECONDS,
    response_model=list[SectionOut],
    responses=error_responses(404),
)
async def list_sections(
    db: Db,
    _: Caller,
    course_id: Annotated[Id | None, Query()] = None,
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
):
    """Live sections, optionally of one course or matching a search, in course code and section
    number order, a page at a time."""
    return db.read(service.list_sections, course_id=course_id, search=q, after=after, limit=limit)


@route("GET", "/sections/{section_id}", ANY_ROLE, response_model=SectionOut)
async def get_section(section_id: PathId, db: Db, _: Caller):
    """One live section with its seat and waitlist counts."""
    return db.read(service.get_section_or_404, section_id)


@route(
    "POST",
    "/sections",
    (REGISTRAR,),
    response_model=SectionOut,
    status_code=201,
)
async def create_section(body: SectionCreate, db: Db, who: Caller, settings: AppSettings):
    """Open a new section of a course."""
    if body.instructor_id is not None:  # that account as the auth service has it now
        await directory.make_current(db, settings, body.instructor_id)
    return await db.write(service.create_section, who, body)


@route(
    "PATCH",
    "/sections/{section_id}",
    (REGISTRAR,),
    response_model=SectionChange,
)
async def update_section(
    section_id: PathId, body: SectionUpdate, db: Db, who: Caller, settings: AppSettings
):
    """Freeze/unfreeze, reassign, or resize a section; says who was promoted as a result."""
    if body.instructor_id is not None:  # that account as the auth service has it now
        await directory.make_current(db, settings, body.instructor_id)
    return await db.write(service.update_section, who, section_id, body)


@route("DELETE", "/sections/{section_id}", (REGISTRAR,), status_code=204)
async def delete_section(section_id: PathId, db: Db, who: Caller):
    """Remove a section from the catalog (its history stays in the database)."""
    await db.write(service.delete_section, who, section_id)
    return Response(status_code=204)


@route("GET", "/sections/{section_id}/enrollments", STAFF, response_model=list[EnrollmentOut])
async def section_enrollments(
    section_id: PathId,
    db: Db,
    who: Caller,
    status: Annotated[RosterStatus, Query()] = "enrolled",
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
):
    """A section's roster, a page at a time: its current students (status `enrolled`) unless
    `status` asks for the waitlisted, the dropped, or `all` rows."""
    wanted = None if status == "all" else status
    return db.read(service.section_roster, who, section_id, wanted, after=after, limit=limit)


@route("GET", "/sections/{section_id}/waitlist", STAFF, response_model=list[WaitlistEntry])
async def section_waitlist(
    section_id: PathId,
    db: Db,
    who: Caller,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
):
    """A section's waitlist in position order, a page at a time."""
    return db.read(service.section_waitlist, who, section_id, after=after, limit=limit)


@route("DELETE", "/sections/{section_id}/enrollments/{user_id}", STAFF, response_model=DropOut)
async def administrative_drop(section_id: PathId, user_id: PathId, db: Db, who: Caller):
    """Drop a student from a section (or its waitlist) on the staff's authority."""
    return await db.write(service.administrative_drop, who, section_id, user_id)


# users


@route("GET", "/users", (REGISTRAR,), response_model=list[UserOut])
async def list_users(db: Db, _: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE):
    """The users the enrollment service knows, in id order, a page at a time."""
    return [_user_out(u) for u in db.read(queries.list_users, after=after, limit=limit)]


@route("GET", "/users/{user_id}", SELF, response_model=UserOut)
async def get_user(user_id: PathId, db: Db, who: Caller, settings: AppSettings):
    """A user's record: your own, anyone's for the registrar, and for an instructor, a student's
    on a roster or waitlist of a section they teach."""
    if who.is_registrar:
        await directory.make_current(db, settings, user_id)
    return _user_out(db.read(service.user_profile, who, user_id))


@route("GET", "/users/{user_id}/enrollments", SELF, response_model=list[EnrollmentOut])
async def user_enrollments(
    user_id: PathId,
    db: Db,
    who: Caller,
    status: Annotated[EnrollmentStatus | None, Query()] = None,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
):
    """A user's enrollments, optionally filtered by status, in id order, a page at a time."""
    return db.read(service.user_enrollments, who, user_id, status, after=after, limit=limit)


@route("GET", "/users/{user_id}/sections", SELF, response_model=list[SectionOut])
async def user_sections(
    user_id: PathId,
    db: Db,
    who: Caller,
    type: Annotated[SectionsType, Query()] = "all",
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
):
    """Sections a user is enrolled in, instructs, or both, in course code and section number
    order, a page at a time."""
    return db.read(service.user_sections, who, user_id, type, after=after, limit=limit)


@route("GET", "/users/{user_id}/waitlist", SELF, response_model=list[WaitlistEntry])
async def user_waitlist(
    user_id: PathId, db: Db, who: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
):
    """The waitlists a user is on, with their position in each, by section id, a page at a
    time."""
    return db.read(service.user_waitlist, who, user_id, after=after, limit=limit)


@route(
    "POST",
    "/users/{user_id}/enrollments",
    (STUDENT, REGISTRAR),
    response_model=EnrollmentOut,
    status_code=201,
)
async def enroll(user_id: PathId, body: EnrollIn, db: Db, who: Caller):
    """Enroll in a section: a seat if one is free and nobody waits, else the waitlist."""
    return await db.write(service.enroll, who, user_id, body)


@route("DELETE", "/users/{user_id}/enrollments/{section_id}", SELF, response_model=DropOut)
async def drop(user_id: PathId, section_id: PathId, db: Db, who: Caller):
    """Drop a section; the head of its waitlist takes the seat unless the section is frozen."""
    return await db.write(service.drop, who, user_id, section_id)


@route("DELETE", "/users/{user_id}/waitlist/{section_id}", SELF, response_model=DropOut)
async def leave_waitlist(user_id: PathId, section_id: PathId, db: Db, who: Caller):
    """Leave a section's waitlist; everyone behind moves up one place."""
    return await db.write(service.leave_waitlist, who, user_id, section_id)


# audit


@route("GET", "/audit", (REGISTRAR,), response_model=list[AuditEntry])
async def audit_trail(
    db: Db,
    _: Caller,
    actor_id: Annotated[Id | None, Query()] = None,
    section_id: Annotated[Id | None, Query()] = None,
    user_id: Annotated[Id | None, Query()] = None,
    action: Annotated[AuditAction | None, Query()] = None,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
):
    """Registrar and instructor actions, newest first, a page at a time (each page older than
    the last)."""
    return db.read(
        service.audit_trail,
        actor_id=actor_id,
        section_id=section_id,
        user_id=user_id,
        action=action,
        after=after,
        limit=limit,
    )


# eligibility (README "Eligibility rules")


@route("GET", "/courses/{course_id}/prerequisites", ANY_ROLE, response_model=list[CourseOut])
async def course_prerequisites(course_id: PathId, db: Db, _: Caller):
    """The courses a student must have completed before taking this one, in code order."""
    return db.read(service.course_prerequisites, course_id)


@route("PUT", "/courses/{course_id}/prerequisites", (REGISTRAR,), response_model=list[CourseOut])
async def set_prerequisites(course_id: PathId, body: PrerequisitesIn, db: Db, who: Caller):
    """Replace a course's prerequisites (409 `prerequisite_cycle` for a loop)."""
    return await db.write(service.set_prerequisites, who, course_id, body.course_ids)


# The CSV import's body limit: the most rows it takes (service.MAX_IMPORT_ROWS, 50,000), as a
# record system exports them ("104523,CPSC 449,2025-FA,A-", about 30 bytes with CRLF: 1.5 MB),
# fit with room to spare (84 bytes a row on average: long term names, quoting). One file is one
# all-or-nothing import of a term's grades: splitting it into 64 KiB pieces would lose that.
CSV_MAX_BODY_BYTES = 4 * 1024 * 1024


async def _csv_rows(request: Request) -> service.CompletedRows:
    """The request's CSV, read (after the caller's check) and parsed before the write turn, in a
    worker thread: 50,000 rows take a quarter of a second to parse, which neither the other
    writers nor this instance's event loop should wait for (the write turn then takes 0.15 s)."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("the CSV must be UTF-8 text", code="csv_encoding") from exc
    return await run_in_threadpool(service.parse_completed, text)


CsvRows = Annotated[service.CompletedRows, Depends(_csv_rows)]


@route(
    "POST",
    "/completed-courses",
    (REGISTRAR,),
    max_body_bytes=CSV_MAX_BODY_BYTES,
    response_model=ImportOut,
    responses=error_responses(422),  # the body is read by hand, so FastAPI declares no 422
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
async def import_completed(db: Db, who: Caller, rows: CsvRows):
    """Import students' completed courses as CSV (header `user_id,course_code[,term][,grade]`,
    UTF-8, a byte order mark allowed, at most 50,000 rows and 4 MiB): every row or none; a bad
    row (malformed, a control character, repeated, an unknown user or course) is a 422 naming
    its line."""
    return {"imported": await db.write(service.import_completed, who, rows)}


@route("GET", "/users/{user_id}/completed-courses", SELF, response_model=list[CompletedCourse])
async def user_completed(
    user_id: PathId, db: Db, who: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
):
    """The courses a user has completed, in course id order, a page at a time."""
    return db.read(service.user_completed, who, user_id, after=after, limit=limit)


@route("PUT", "/users/{user_id}/credit-limit", (REGISTRAR,), response_model=UserOut)
async def set_credit_limit(user_id: PathId, body: CreditLimitIn, db: Db, who: Caller):
    """Set one student's credit limit (null: the default, 18)."""
    return _user_out(await db.write(service.set_credit_limit, who, user_id, body.credit_limit))


@route("GET", "/users/{user_id}/holds", SELF, response_model=list[HoldOut])
async def user_holds(
    user_id: PathId, db: Db, who: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
):
    """A user's holds, lifted ones too, in id order, a page at a time."""
    return db.read(service.user_holds, who, user_id, after=after, limit=limit)


@route("POST", "/users/{user_id}/holds", (REGISTRAR,), response_model=HoldOut, status_code=201)
async def place_hold(user_id: PathId, body: HoldIn, db: Db, who: Caller):
    """Place a hold: the student cannot enroll or join a waitlist until it is lifted."""
    return await db.write(service.place_hold, who, user_id, body.reason)


@route("DELETE", "/users/{user_id}/holds/{hold_id}", (REGISTRAR,), response_model=HoldOut)
async def lift_hold(user_id: PathId, hold_id: PathId, db: Db, who: Caller):
    """Lift a hold (it stays listed, with who lifted it and when)."""
    return await db.write(service.lift_hold, who, user_id, hold_id)


@route("GET", "/users/{user_id}/permits", SELF, response_model=list[PermitOut])
async def user_permits(
    user_id: PathId, db: Db, who: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
):
    """A user's permits, revoked ones too, in id order, a page at a time."""
    return db.read(service.user_permits, who, user_id, after=after, limit=limit)


@route("GET", "/sections/{section_id}/permits", STAFF, response_model=list[PermitOut])
async def section_permits(
    section_id: PathId,
    db: Db,
    who: Caller,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
):
    """A section's permits, revoked ones too, in id order, a page at a time."""
    return db.read(service.section_permits, who, section_id, after=after, limit=limit)


@route("POST", "/sections/{section_id}/permits", STAFF, response_model=PermitOut, status_code=201)
async def grant_permit(section_id: PathId, body: PermitIn, db: Db, who: Caller):
    """Let one student past the named rules of this section (its registrar or instructor)."""
    return await db.write(service.grant_permit, who, section_id, body.user_id, list(body.waives))


@route("DELETE", "/sections/{section_id}/permits/{permit_id}", STAFF, response_model=PermitOut)
async def revoke_permit(section_id: PathId, permit_id: PathId, db: Db, who: Caller):
    """Revoke a permit: it waives nothing more (a place it gave stays)."""
    return await db.write(service.revoke_permit, who, section_id, permit_id)


# terms and registration windows


@route("GET", "/terms", ANY_ROLE, response_model=list[TermOut])
async def list_terms(db: Db, _: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE):
    """The terms, in id order, a page at a time."""
    return db.read(queries.list_terms, after=after, limit=limit)


@route("GET", "/terms/{term_id}", ANY_ROLE, response_model=TermOut)
async def get_term(term_id: PathId, db: Db, _: Caller):
    """One term, with its add and drop deadlines."""
    return db.read(service.get_term, term_id)


@route("POST", "/terms", (REGISTRAR,), response_model=TermOut, status_code=201)
async def create_term(body: TermIn, db: Db, who: Caller):
    """Open a term, with its add and drop deadlines (none if not given)."""
    return await db.write(service.create_term, who, body)


@route("PATCH", "/terms/{term_id}", (REGISTRAR,), response_model=TermOut)
async def update_term(term_id: PathId, body: TermChange, db: Db, who: Caller):
    """Rename a term, or move (null: remove) its add or drop deadline."""
    return await db.write(service.update_term, who, term_id, body)


@route("GET", "/terms/{term_id}/windows", ANY_ROLE, response_model=list[WindowOut])
async def term_windows(
    term_id: PathId, db: Db, _: Caller, after: After = None, limit: PageLimit = DEFAULT_PAGE
):
    """A term's registration windows, in id order, a page at a time."""
    return db.read(service.term_windows, term_id, after=after, limit=limit)


@route("POST", "/terms/{term_id}/windows", (REGISTRAR,), response_model=WindowOut, status_code=201)
async def create_window(term_id: PathId, body: WindowIn, db: Db, who: Caller):
    """Open a registration window: for a class level, for the students listed, or (neither
    given) for everyone. Once a term has windows, a student adds its sections only in one of
    theirs."""
    return await db.write(service.create_window, who, term_id, body)


@route("DELETE", "/terms/{term_id}/windows/{window_id}", (REGISTRAR,), status_code=204)
async def delete_window(term_id: PathId, window_id: PathId, db: Db, who: Caller):
    """Remove a registration window."""
    await db.write(service.delete_window, who, term_id, window_id)
    return Response(status_code=204)


@route("PUT", "/users/{user_id}/class-level", (REGISTRAR,), response_model=UserOut)
async def set_class_level(user_id: PathId, body: ClassLevelIn, db: Db, who: Caller):
    """Set a student's class level (the registration windows for a class level use it)."""
    return _user_out(await db.write(service.set_class_level, who, user_id, body.class_level))


# service to service

# Routes for the other services of this installation (gateway secret, no user), never routed by a
# gateway and out of the OpenAPI schema.
internal = APIRouter(include_in_schema=False, dependencies=[FromService])


@internal.put("/internal/users/{user_id}", status_code=204)
async def account_announced(user_id: PathId, body: AccountIn, db: Db) -> Response:
    """The auth service announces an account it has created or changed: recorded here at once,
    names included, so every account is known before its user's first request."""
    account = {"id": user_id, **body.model_dump()}
    if not db.read(service.account_is_recorded, account):
        await db.write(service.remember_account, account)
    return Response(status_code=204)
