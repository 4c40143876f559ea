"""The rules of the catalog: courses and sections exist (404 otherwise), a course's code and a
section's number are unique, a section names an instructor, and who manages a section."""

import sqlite3

from app.common.errors import Conflict, Forbidden, NotFound
from app.common.identity import INSTRUCTOR
from app.enrollment.audit.service import record
from app.enrollment.catalog import queries
from app.enrollment.catalog.models import CourseCreate, SectionCreate
from app.enrollment.people.models import Identity
from app.enrollment.people.service import get_user_or_404
from app.enrollment.sql import Row
from app.enrollment.terms.service import get_term_or_404


def get_course_or_404(conn: sqlite3.Connection, course_id: int) -> Row:
    course = queries.get_course(conn, course_id=course_id)
    if course is None:
        raise NotFound(f"course {course_id} not found")
    return course


def get_section_or_404(conn: sqlite3.Connection, section_id: int) -> Row:
    section = queries.get_section(conn, section_id=section_id)
    if section is None:
        raise NotFound(f"section {section_id} not found")
    return section


def require_section_staff(caller: Identity, section: Row) -> None:
    """Rule: only the registrar and the section's own instructor manage a section's roster."""
    if caller.is_registrar:
        return
    if INSTRUCTOR in caller.roles and section["instructor_id"] == caller.user_id:
        return
    raise Forbidden(f"user {caller.user_id} does not teach section {section['id']}")


def require_instructor(conn: sqlite3.Connection, instructor_id: int) -> None:
    """Rule: a section is taught by an account holding the instructor role."""
    user = get_user_or_404(conn, instructor_id)
    if INSTRUCTOR not in user["roles"]:
        raise Conflict(f"user {instructor_id} is not an instructor", code="not_an_instructor")


def list_sections(
    conn: sqlite3.Connection,
    *,
    course_id: int | None,
    term_id: int | None = None,
    search: str | None,
    after: int | None,
    limit: int,
) -> list[Row]:
    """Live sections (of one course, of one term, 404 if there is no such course or term;
    matching `search`), in course code and section number order."""
    if course_id is not None:
        get_course_or_404(conn, course_id)
    if term_id is not None:
        get_term_or_404(conn, term_id)
    return queries.list_sections(
        conn, course_id=course_id, term_id=term_id, search=search, after=after, limit=limit
    )


def create_course(tx: sqlite3.Connection, caller: Identity, data: CourseCreate) -> Row:
    """Registrar adds a course; its code is unique."""
    if queries.get_department(tx, department_id=data.department_id) is None:
        raise NotFound(f"department {data.department_id} not found")
    if queries.get_course_by_code(tx, code=data.code) is not None:
        raise Conflict(f"course {data.code} already exists", code="course_exists")
    course_id = queries.create_course(
        tx,
        department_id=data.department_id,
        code=data.code,
        title=data.title,
        credits=data.credits,
    )
    record(tx, caller, "course.create", course_id=course_id, code=data.code)
    return get_course_or_404(tx, course_id)


def create_section(tx: sqlite3.Connection, caller: Identity, data: SectionCreate) -> Row:
    """Registrar opens a section of a course; section numbers are unique per course."""
    get_course_or_404(tx, data.course_id)
    if data.term_id is not None:
        get_term_or_404(tx, data.term_id)
    if data.instructor_id is not None:
        require_instructor(tx, data.instructor_id)
    if queries.section_number_taken(
        tx, course_id=data.course_id, section_number=data.section_number
    ):
        raise Conflict(
            f"course {data.course_id} already has a section {data.section_number}",
            code="section_exists",
        )
    section_id = queries.create_section(tx, **data.model_dump(exclude={"meetings"}))
    queries.set_meetings(tx, section_id=section_id, meetings=data.model_dump()["meetings"])
    record(
        tx,
        caller,
        "section.create",
        course_id=data.course_id,
        section_id=section_id,
        **data.model_dump(exclude={"course_id"}),
    )
    return get_section_or_404(tx, section_id)
