"""The SQL of the catalog: departments, courses, sections and their meeting times."""

import re
import sqlite3

from app.enrollment.sql import NOW, Row, inserted_id, one, rows

# Counts per section come from the (section_id, status, id) index: a few index probes per section,
# however many enrollment rows the whole term has.
_SECTION_SELECT = """
    SELECT s.id, s.course_id, s.term_id, c.code AS course_code, c.title AS course_title, c.credits,
           s.section_number,
           s.instructor_id,
           -- the instructor's name as this service last heard it (NULL: none, or not known yet)
           NULLIF(TRIM(i.first_name || ' ' || i.last_name), '') AS instructor_name,
           s.capacity, s.waitlist_capacity, s.frozen, s.room, s.schedule,
           s.waitlist_mode, s.claim_seconds, n.enrolled, n.waitlisted, n.offered,
           MAX(s.capacity - n.enrolled - n.offered, 0) AS seats_available,
           (SELECT json_group_array(json_object('days', m.days, 'start', m.starts_at,
                                                'end', m.ends_at))
            FROM section_meetings m WHERE m.section_id = s.id) AS meetings
    FROM sections s
    JOIN courses c ON c.id = s.course_id
    LEFT JOIN users i ON i.id = s.instructor_id
    JOIN (
        SELECT sections.id AS section_id,
               (SELECT COUNT(*) FROM enrollments e
                WHERE e.section_id = sections.id AND e.status = 'enrolled') AS enrolled,
               (SELECT COUNT(*) FROM enrollments e
                WHERE e.section_id = sections.id AND e.status = 'waitlisted') AS waitlisted,
               -- seats held by open offers (app/enrollment/offers): in use, as taken ones are
               (SELECT COUNT(*) FROM seat_offers o
                WHERE o.section_id = sections.id AND o.status = 'open') AS offered
        FROM sections
    ) n ON n.section_id = s.id
    WHERE s.deleted_at IS NULL
"""


COURSE_SELECT = """
    SELECT c.id, c.department_id, d.code AS department_code, c.code, c.title, c.credits
    FROM courses c JOIN departments d ON d.id = c.department_id
"""


def get_department(conn: sqlite3.Connection, *, department_id: int) -> Row | None:
    return one(conn.execute("SELECT * FROM departments WHERE id = ?", (department_id,)))


# Paging: a list's `after` is the id of the last row of the page before; the next page starts
# after that row in the list's own order (keyset paging: no row is skipped or repeated when rows
# are added or removed between pages). `limit` -1 is the whole list.


def list_courses(
    conn: sqlite3.Connection, *, after: int | None = None, limit: int = -1
) -> list[Row]:
    """Courses in code order (codes are unique)."""
    where = " WHERE c.code > (SELECT code FROM courses WHERE id = ?)" if after else ""
    params = (after,) if after else ()
    return rows(conn.execute(COURSE_SELECT + where + " ORDER BY c.code LIMIT ?", (*params, limit)))


def get_course(conn: sqlite3.Connection, *, course_id: int) -> Row | None:
    return one(conn.execute(COURSE_SELECT + " WHERE c.id = ?", (course_id,)))


def get_course_by_code(conn: sqlite3.Connection, *, code: str) -> Row | None:
    return one(conn.execute(COURSE_SELECT + " WHERE c.code = ?", (code,)))


def create_course(
    conn: sqlite3.Connection, *, department_id: int, code: str, title: str, credits: int
) -> int:
    cur = conn.execute(
        "INSERT INTO courses (department_id, code, title, credits) VALUES (?, ?, ?, ?)",
        (department_id, code, title, credits),
    )
    return inserted_id(cur)


def course_ids_by_code(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT code, id FROM courses"))


# Sections come in course code, section number order (id breaks a tie with a deleted section).
_SECTION_ORDER = " ORDER BY c.code, s.section_number, s.id LIMIT ?"


_SECTION_AFTER = """
    AND (c.code, s.section_number, s.id) > (
        SELECT c2.code, s2.section_number, s2.id
        FROM sections s2 JOIN courses c2 ON c2.id = s2.course_id WHERE s2.id = ?)
"""


def list_sections(
    conn: sqlite3.Connection,
    *,
    course_id: int | None = None,
    term_id: int | None = None,
    search: str | None = None,
    after: int | None = None,
    limit: int = -1,
) -> list[Row]:
    """Live sections (of one course, of one term, and whose course code or title contains
    `search` in any case, if given), in course code and section number order."""
    sql = _SECTION_SELECT
    params: list[int | str] = []
    if course_id is not None:
        sql += " AND s.course_id = ?"
        params.append(course_id)
    if term_id is not None:
        sql += " AND s.term_id = ?"
        params.append(term_id)
    if search:
        # LIKE ignores ASCII case; % and _ typed by the user match themselves.
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", search) + "%"
        sql += " AND (c.code LIKE ? ESCAPE '\\' OR c.title LIKE ? ESCAPE '\\')"
        params += [pattern, pattern]
    if after:
        sql += _SECTION_AFTER
        params.append(after)
    return rows(conn.execute(sql + _SECTION_ORDER, (*params, limit)))


def get_section(conn: sqlite3.Connection, *, section_id: int) -> Row | None:
    """A live (not deleted) section with its counts."""
    return one(conn.execute(_SECTION_SELECT + " AND s.id = ?", (section_id,)))


def sections_of_user(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    enrolled: bool,
    instructing: bool,
    after: int | None,
    limit: int,
) -> list[Row]:
    """Live sections the user is enrolled in and/or instructs, in the order of list_sections."""
    mine = []
    if enrolled:
        mine.append(
            "s.id IN (SELECT section_id FROM enrollments WHERE user_id = ? AND status = 'enrolled')"
        )
    if instructing:
        mine.append("s.instructor_id = ?")
    sql = _SECTION_SELECT + f" AND ({' OR '.join(mine)})"
    params: list[int] = [user_id] * len(mine)
    if after:
        sql += _SECTION_AFTER
        params.append(after)
    return rows(conn.execute(sql + _SECTION_ORDER, (*params, limit)))


def section_number_taken(conn: sqlite3.Connection, *, course_id: int, section_number: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sections WHERE course_id = ? AND section_number = ? AND deleted_at IS NULL",
        (course_id, section_number),
    ).fetchone()
    return row is not None


def create_section(
    conn: sqlite3.Connection,
    *,
    course_id: int,
    section_number: int,
    instructor_id: int | None,
    capacity: int,
    waitlist_capacity: int,
    room: str,
    schedule: str,
    term_id: int | None = None,
    waitlist_mode: str = "auto",
    claim_seconds: int = 86400,
) -> int:
    cur = conn.execute(
        "INSERT INTO sections (course_id, section_number, instructor_id, capacity,"
        " waitlist_capacity, room, schedule, term_id, waitlist_mode, claim_seconds)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (course_id, section_number, instructor_id, capacity, waitlist_capacity, room, schedule,
         term_id, waitlist_mode, claim_seconds),
    )  # fmt: skip
    return inserted_id(cur)


_SECTION_UPDATABLE = {
    "instructor_id",
    "capacity",
    "waitlist_capacity",
    "frozen",
    "waitlist_mode",
    "claim_seconds",
}


def update_section(conn: sqlite3.Connection, *, section_id: int, changes: Row) -> None:
    unknown = set(changes) - _SECTION_UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    if not changes:
        return
    assignments = ", ".join(f"{column} = ?" for column in changes)
    conn.execute(f"UPDATE sections SET {assignments} WHERE id = ?", (*changes.values(), section_id))


def mark_section_deleted(conn: sqlite3.Connection, *, section_id: int) -> None:
    conn.execute(f"UPDATE sections SET deleted_at = {NOW} WHERE id = ?", (section_id,))


def set_meetings(conn: sqlite3.Connection, *, section_id: int, meetings: list[Row]) -> None:
    """Replace a section's meeting times."""
    conn.execute("DELETE FROM section_meetings WHERE section_id = ?", (section_id,))
    conn.executemany(
        "INSERT INTO section_meetings (section_id, days, starts_at, ends_at) VALUES (?, ?, ?, ?)",
        [(section_id, m["days"], m["start"], m["end"]) for m in meetings],
    )
