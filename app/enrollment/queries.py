"""Every SQL statement of the enrollment service. Functions take the connection first and
keyword-only arguments after it; none of them opens or commits a transaction."""

import sqlite3
from collections.abc import Iterable

NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

# A waitlisted row's position is its rank by arrival (id) among its section's waitlisted rows.
_POSITION = """
    CASE WHEN e.status = 'waitlisted' THEN (
        SELECT COUNT(*) FROM enrollments w
        WHERE w.section_id = e.section_id AND w.status = 'waitlisted' AND w.id <= e.id
    ) END AS position
"""

_ENROLLMENT_COLUMNS = f"""
    e.id, e.section_id, e.user_id, e.status, e.created_at, e.enrolled_at, e.dropped_at,
    e.drop_reason, {_POSITION}
"""

# Counts per section come from the (section_id, status, id) index: a few index probes per section,
# however many enrollment rows the whole term has.
_SECTION_SELECT = """
    SELECT s.id, s.course_id, c.code AS course_code, c.title AS course_title, s.section_number,
           s.instructor_id, s.capacity, s.waitlist_capacity, s.frozen, s.room, s.schedule,
           n.enrolled, n.waitlisted, MAX(s.capacity - n.enrolled, 0) AS seats_available
    FROM sections s
    JOIN courses c ON c.id = s.course_id
    JOIN (
        SELECT sections.id AS section_id,
               (SELECT COUNT(*) FROM enrollments e
                WHERE e.section_id = sections.id AND e.status = 'enrolled') AS enrolled,
               (SELECT COUNT(*) FROM enrollments e
                WHERE e.section_id = sections.id AND e.status = 'waitlisted') AS waitlisted
        FROM sections
    ) n ON n.section_id = s.id
    WHERE s.deleted_at IS NULL
"""

_COURSE_SELECT = """
    SELECT c.id, c.department_id, d.code AS department_code, c.code, c.title, c.credits
    FROM courses c JOIN departments d ON d.id = c.department_id
"""


def _rows(cur: sqlite3.Cursor) -> list[dict]:
    return [dict(r) for r in cur.fetchall()]


def _one(cur: sqlite3.Cursor) -> dict | None:
    row = cur.fetchone()
    return dict(row) if row is not None else None


# departments and courses


def get_department(conn: sqlite3.Connection, *, department_id: int) -> dict | None:
    return _one(conn.execute("SELECT * FROM departments WHERE id = ?", (department_id,)))


# Paging: a list's `after` is the id of the last row of the page before; the next page starts
# after that row in the list's own order (keyset paging: no row is skipped or repeated when rows
# are added or removed between pages). `limit` -1 is the whole list.


def list_courses(
    conn: sqlite3.Connection, *, after: int | None = None, limit: int = -1
) -> list[dict]:
    """Courses in code order (codes are unique)."""
    where = " WHERE c.code > (SELECT code FROM courses WHERE id = ?)" if after else ""
    params = (after,) if after else ()
    return _rows(
        conn.execute(_COURSE_SELECT + where + " ORDER BY c.code LIMIT ?", (*params, limit))
    )


def get_course(conn: sqlite3.Connection, *, course_id: int) -> dict | None:
    return _one(conn.execute(_COURSE_SELECT + " WHERE c.id = ?", (course_id,)))


def get_course_by_code(conn: sqlite3.Connection, *, code: str) -> dict | None:
    return _one(conn.execute(_COURSE_SELECT + " WHERE c.code = ?", (code,)))


def create_course(
    conn: sqlite3.Connection, *, department_id: int, code: str, title: str, credits: int
) -> int:
    cur = conn.execute(
        "INSERT INTO courses (department_id, code, title, credits) VALUES (?, ?, ?, ?)",
        (department_id, code, title, credits),
    )
    return int(cur.lastrowid)


# sections


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
    after: int | None = None,
    limit: int = -1,
) -> list[dict]:
    """Live sections (of one course, if given), in course code and section number order."""
    sql, params = _SECTION_SELECT, []
    if course_id is not None:
        sql += " AND s.course_id = ?"
        params.append(course_id)
    if after:
        sql += _SECTION_AFTER
        params.append(after)
    return _rows(conn.execute(sql + _SECTION_ORDER, (*params, limit)))


def get_section(conn: sqlite3.Connection, *, section_id: int) -> dict | None:
    """A live (not deleted) section with its counts."""
    return _one(conn.execute(_SECTION_SELECT + " AND s.id = ?", (section_id,)))


def sections_of_user(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    enrolled: bool,
    instructing: bool,
    after: int | None,
    limit: int,
) -> list[dict]:
    """Live sections the user is enrolled in and/or instructs, in the order of list_sections."""
    mine = []
    if enrolled:
        mine.append(
            "s.id IN (SELECT section_id FROM enrollments WHERE user_id = ? AND status = 'enrolled')"
        )
    if instructing:
        mine.append("s.instructor_id = ?")
    sql = _SECTION_SELECT + f" AND ({' OR '.join(mine)})"
    params: list = [user_id] * len(mine)
    if after:
        sql += _SECTION_AFTER
        params.append(after)
    return _rows(conn.execute(sql + _SECTION_ORDER, (*params, limit)))


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
) -> int:
    cur = conn.execute(
        "INSERT INTO sections (course_id, section_number, instructor_id, capacity,"
        " waitlist_capacity, room, schedule) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (course_id, section_number, instructor_id, capacity, waitlist_capacity, room, schedule),
    )
    return int(cur.lastrowid)


_SECTION_UPDATABLE = {"instructor_id", "capacity", "waitlist_capacity", "frozen"}


def update_section(conn: sqlite3.Connection, *, section_id: int, changes: dict) -> None:
    unknown = set(changes) - _SECTION_UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    if not changes:
        return
    assignments = ", ".join(f"{column} = ?" for column in changes)
    conn.execute(f"UPDATE sections SET {assignments} WHERE id = ?", (*changes.values(), section_id))


def mark_section_deleted(conn: sqlite3.Connection, *, section_id: int) -> None:
    conn.execute(f"UPDATE sections SET deleted_at = {NOW} WHERE id = ?", (section_id,))


def count_in_section(conn: sqlite3.Connection, *, section_id: int, status: str) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM enrollments WHERE section_id = ? AND status = ?",
        (section_id, status),
    ).fetchone()
    return int(row[0])


def count_waitlists_of(conn: sqlite3.Connection, *, user_id: int) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM enrollments WHERE user_id = ? AND status = 'waitlisted'",
        (user_id,),
    ).fetchone()
    return int(row[0])


# enrollments


def get_enrollment(conn: sqlite3.Connection, *, enrollment_id: int) -> dict | None:
    return _one(
        conn.execute(
            f"SELECT {_ENROLLMENT_COLUMNS} FROM enrollments e WHERE e.id = ?", (enrollment_id,)
        )
    )


def get_live_enrollment(conn: sqlite3.Connection, *, section_id: int, user_id: int) -> dict | None:
    """The enrolled or waitlisted row of a student in a section, if any."""
    return _one(
        conn.execute(
            f"SELECT {_ENROLLMENT_COLUMNS} FROM enrollments e WHERE e.section_id = ?"
            " AND e.user_id = ? AND e.status IN ('enrolled', 'waitlisted')",
            (section_id, user_id),
        )
    )


def insert_enrollment(
    conn: sqlite3.Connection, *, section_id: int, user_id: int, status: str
) -> int:
    enrolled_at = NOW if status == "enrolled" else "NULL"
    cur = conn.execute(
        f"INSERT INTO enrollments (section_id, user_id, status, enrolled_at)"
        f" VALUES (?, ?, ?, {enrolled_at})",
        (section_id, user_id, status),
    )
    return int(cur.lastrowid)


def mark_dropped(conn: sqlite3.Connection, *, enrollment_id: int, reason: str) -> None:
    conn.execute(
        f"UPDATE enrollments SET status = 'dropped', dropped_at = {NOW}, drop_reason = ?"
        " WHERE id = ?",
        (reason, enrollment_id),
    )


def drop_all_live_in_section(conn: sqlite3.Connection, *, section_id: int, reason: str) -> None:
    conn.execute(
        f"UPDATE enrollments SET status = 'dropped', dropped_at = {NOW}, drop_reason = ?"
        " WHERE section_id = ? AND status IN ('enrolled', 'waitlisted')",
        (reason, section_id),
    )


def waitlist_head_ids(conn: sqlite3.Connection, *, section_id: int, limit: int) -> list[int]:
    """Ids of the first `limit` waitlisted rows of a section, in arrival order."""
    cur = conn.execute(
        "SELECT id FROM enrollments WHERE section_id = ? AND status = 'waitlisted'"
        " ORDER BY id LIMIT ?",
        (section_id, limit),
    )
    return [int(r[0]) for r in cur.fetchall()]


def mark_enrolled(conn: sqlite3.Connection, *, enrollment_ids: Iterable[int]) -> None:
    conn.executemany(
        f"UPDATE enrollments SET status = 'enrolled', enrolled_at = {NOW} WHERE id = ?",
        [(i,) for i in enrollment_ids],
    )


def list_section_enrollments(
    conn: sqlite3.Connection,
    *,
    section_id: int,
    status: str | None,
    after: int | None = None,
    limit: int = -1,
) -> list[dict]:
    """A page of a section's enrollment rows in id order: those after id `after`, at most
    `limit` of them (-1: all)."""
    sql = f"SELECT {_ENROLLMENT_COLUMNS} FROM enrollments e WHERE e.section_id = ? AND e.id > ?"
    params: tuple = (section_id, after or 0)
    if status is not None:
        sql += " AND e.status = ?"
        params += (status,)
    return _rows(conn.execute(sql + " ORDER BY e.id LIMIT ?", (*params, limit)))


def list_user_enrollments(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    status: str | None,
    after: int | None = None,
    limit: int = -1,
) -> list[dict]:
    """A page of a student's enrollment rows in live sections, in id order (see
    list_section_enrollments)."""
    sql = (
        f"SELECT {_ENROLLMENT_COLUMNS} FROM enrollments e"
        " JOIN sections s ON s.id = e.section_id AND s.deleted_at IS NULL"
        " WHERE e.user_id = ? AND e.id > ?"
    )
    params: tuple = (user_id, after or 0)
    if status is not None:
        sql += " AND e.status = ?"
        params += (status,)
    return _rows(conn.execute(sql + " ORDER BY e.id LIMIT ?", (*params, limit)))


# A waitlist entry is its enrollment row (its id is the row's); position is its rank by arrival
# (id) among its section's waitlisted rows.
_WAITLIST_SELECT = """
    SELECT e.id, e.section_id, e.user_id, u.username, e.created_at AS joined_at,
           ROW_NUMBER() OVER (PARTITION BY e.section_id ORDER BY e.id) AS position
    FROM enrollments e JOIN users u ON u.id = e.user_id
    WHERE e.status = 'waitlisted'
"""


def section_waitlist(
    conn: sqlite3.Connection, *, section_ids: list[int], after: int | None = None, limit: int = -1
) -> list[dict]:
    """Waitlist entries of the given sections, by section then position."""
    if not section_ids:
        return []
    marks = ",".join("?" * len(section_ids))
    sql = f"SELECT * FROM ({_WAITLIST_SELECT} AND e.section_id IN ({marks}))"
    params = list(section_ids)
    if after:
        sql += " WHERE (section_id, id) > (SELECT section_id, id FROM enrollments WHERE id = ?)"
        params.append(after)
    return _rows(conn.execute(sql + " ORDER BY section_id, id LIMIT ?", (*params, limit)))


def user_waitlist(
    conn: sqlite3.Connection, *, user_id: int, after: int | None = None, limit: int = -1
) -> list[dict]:
    """A student's waitlist entries with their positions in each section, by section."""
    sql = (
        f"SELECT * FROM ({_WAITLIST_SELECT} AND e.section_id IN (SELECT section_id"
        " FROM enrollments WHERE user_id = ? AND status = 'waitlisted')) WHERE user_id = ?"
    )
    params = [user_id, user_id]
    if after:
        sql += " AND section_id > (SELECT section_id FROM enrollments WHERE id = ?)"
        params.append(after)
    return _rows(conn.execute(sql + " ORDER BY section_id LIMIT ?", (*params, limit)))


# users


def list_users(
    conn: sqlite3.Connection, *, after: int | None = None, limit: int = -1
) -> list[dict]:
    """A page of the users in id order: those after id `after`, at most `limit` (-1: all)."""
    return _rows(
        conn.execute("SELECT * FROM users WHERE id > ? ORDER BY id LIMIT ?", (after or 0, limit))
    )


def get_user(conn: sqlite3.Connection, *, user_id: int) -> dict | None:
    return _one(conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)))


def upsert_account(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    username: str,
    first_name: str,
    last_name: str,
    roles: str,
) -> None:
    conn.execute(
        "INSERT INTO users (id, username, first_name, last_name, roles) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET username = excluded.username,"
        " first_name = excluded.first_name, last_name = excluded.last_name,"
        " roles = excluded.roles",
        (user_id, username, first_name, last_name, roles),
    )


def upsert_user(conn: sqlite3.Connection, *, user_id: int, username: str, roles: str) -> None:
    conn.execute(
        "INSERT INTO users (id, username, roles) VALUES (?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET username = excluded.username, roles = excluded.roles",
        (user_id, username, roles),
    )


# audit trail


def insert_audit(
    conn: sqlite3.Connection,
    *,
    actor_id: int,
    actor_role: str,
    action: str,
    course_id: int | None,
    section_id: int | None,
    user_id: int | None,
    details: str,
) -> None:
    conn.execute(
        "INSERT INTO audit_log (actor_id, actor_role, action, course_id, section_id, user_id,"
        " details) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (actor_id, actor_role, action, course_id, section_id, user_id, details),
    )


def list_audit(
    conn: sqlite3.Connection,
    *,
    actor_id: int | None,
    section_id: int | None,
    user_id: int | None,
    action: str | None,
    after: int | None,
    limit: int,
) -> list[dict]:
    """Newest first; `after` (the last id of the page before) pages backwards in time."""
    filters = {
        "actor_id = ?": actor_id,
        "section_id = ?": section_id,
        "user_id = ?": user_id,
        "action = ?": action,
        "id < ?": after,
    }
    used = {clause: value for clause, value in filters.items() if value is not None}
    where = " AND ".join(used) or "1"
    return _rows(
        conn.execute(
            f"SELECT * FROM audit_log WHERE {where} ORDER BY id DESC LIMIT ?",
            (*used.values(), limit),
        )
    )
