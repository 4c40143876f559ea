"""Every SQL statement of the enrollment service. Functions take the connection first and
keyword-only arguments after it; none of them opens or commits a transaction."""

import json
import re
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
    SELECT s.id, s.course_id, s.term_id, c.code AS course_code, c.title AS course_title, c.credits,
           s.section_number,
           s.instructor_id, s.capacity, s.waitlist_capacity, s.frozen, s.room, s.schedule,
           n.enrolled, n.waitlisted, MAX(s.capacity - n.enrolled, 0) AS seats_available,
           (SELECT json_group_array(json_object('days', m.days, 'start', m.starts_at,
                                                'end', m.ends_at))
            FROM section_meetings m WHERE m.section_id = s.id) AS meetings
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
    search: str | None = None,
    after: int | None = None,
    limit: int = -1,
) -> list[dict]:
    """Live sections (of one course, and whose course code or title contains `search` in any
    case, if given), in course code and section number order."""
    sql, params = _SECTION_SELECT, []
    if course_id is not None:
        sql += " AND s.course_id = ?"
        params.append(course_id)
    if search:
        # LIKE ignores ASCII case; % and _ typed by the user match themselves.
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", search) + "%"
        sql += " AND (c.code LIKE ? ESCAPE '\\' OR c.title LIKE ? ESCAPE '\\')"
        params += [pattern, pattern]
    if after:
        sql += _SECTION_AFTER
        params.append(after)
    return _rows(conn.execute(sql + _SECTION_ORDER, (*params, limit)))


def get_section(conn: sqlite3.Connection, *, section_id: int) -> dict | None:
    """A live (not deleted) section with its counts."""
    return _one(conn.execute(_SECTION_SELECT + " AND s.id = ?", (section_id,)))


def teaches_student(conn: sqlite3.Connection, *, instructor_id: int, student_id: int) -> bool:
    """Whether the student is enrolled in, or waiting for, a live section the instructor teaches."""
    row = conn.execute(
        """SELECT 1 FROM enrollments e JOIN sections s ON s.id = e.section_id
           WHERE s.instructor_id = ? AND e.user_id = ? AND s.deleted_at IS NULL
             AND e.status IN ('enrolled', 'waitlisted')
           LIMIT 1""",
        (instructor_id, student_id),
    ).fetchone()
    return row is not None


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
    term_id: int | None = None,
) -> int:
    cur = conn.execute(
        "INSERT INTO sections (course_id, section_number, instructor_id, capacity,"
        " waitlist_capacity, room, schedule, term_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (course_id, section_number, instructor_id, capacity, waitlist_capacity, room, schedule,
         term_id),
    )  # fmt: skip
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


# eligibility


def set_meetings(conn: sqlite3.Connection, *, section_id: int, meetings: list[dict]) -> None:
    """Replace a section's meeting times."""
    conn.execute("DELETE FROM section_meetings WHERE section_id = ?", (section_id,))
    conn.executemany(
        "INSERT INTO section_meetings (section_id, days, starts_at, ends_at) VALUES (?, ?, ?, ?)",
        [(section_id, m["days"], m["start"], m["end"]) for m in meetings],
    )


def active_hold(conn: sqlite3.Connection, *, user_id: int) -> dict | None:
    """The oldest hold on the user not lifted yet, or None."""
    return _one(
        conn.execute(
            "SELECT * FROM holds WHERE user_id = ? AND lifted_at IS NULL ORDER BY id LIMIT 1",
            (user_id,),
        )
    )


def list_holds(
    conn: sqlite3.Connection, *, user_id: int, after: int | None, limit: int
) -> list[dict]:
    return _rows(
        conn.execute(
            "SELECT * FROM holds WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?",
            (user_id, after or 0, limit),
        )
    )


def get_hold(conn: sqlite3.Connection, *, hold_id: int) -> dict | None:
    return _one(conn.execute("SELECT * FROM holds WHERE id = ?", (hold_id,)))


def place_hold(conn: sqlite3.Connection, *, user_id: int, reason: str, placed_by: int) -> int:
    cur = conn.execute(
        "INSERT INTO holds (user_id, reason, placed_by) VALUES (?, ?, ?)",
        (user_id, reason, placed_by),
    )
    return int(cur.lastrowid)  # type: ignore[arg-type]


def lift_hold(conn: sqlite3.Connection, *, hold_id: int, lifted_by: int) -> None:
    conn.execute(
        f"UPDATE holds SET lifted_by = ?, lifted_at = {NOW} WHERE id = ? AND lifted_at IS NULL",
        (lifted_by, hold_id),
    )


def missing_prerequisites(conn: sqlite3.Connection, *, course_id: int, user_id: int) -> list[str]:
    """Codes of the course's prerequisites the user has not completed, in code order."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT c.code FROM course_prerequisites p JOIN courses c ON c.id = p.prerequisite_id"
            " WHERE p.course_id = ? AND NOT EXISTS (SELECT 1 FROM completed_courses d"
            " WHERE d.user_id = ? AND d.course_id = p.prerequisite_id) ORDER BY c.code",
            (course_id, user_id),
        )
    ]


def prerequisites(conn: sqlite3.Connection, *, course_id: int) -> list[dict]:
    return _rows(
        conn.execute(
            _COURSE_SELECT + " WHERE c.id IN (SELECT prerequisite_id FROM course_prerequisites"
            " WHERE course_id = ?) ORDER BY c.code",
            (course_id,),
        )
    )


def set_prerequisites(conn: sqlite3.Connection, *, course_id: int, prerequisite_ids: list[int]):
    conn.execute("DELETE FROM course_prerequisites WHERE course_id = ?", (course_id,))
    conn.executemany(
        "INSERT INTO course_prerequisites (course_id, prerequisite_id) VALUES (?, ?)",
        [(course_id, p) for p in prerequisite_ids],
    )


def courses_needing(conn: sqlite3.Connection, *, course_id: int) -> set[int]:
    """Every course that needs this one, directly or through other prerequisites."""
    return {
        row[0]
        for row in conn.execute(
            "WITH RECURSIVE needing(id) AS ("
            " SELECT course_id FROM course_prerequisites WHERE prerequisite_id = ?"
            " UNION SELECT p.course_id FROM course_prerequisites p JOIN needing n"
            " ON p.prerequisite_id = n.id) SELECT id FROM needing",
            (course_id,),
        )
    }


def completed_courses(
    conn: sqlite3.Connection, *, user_id: int, after: int | None, limit: int
) -> list[dict]:
    """A user's completed courses in course id order (`after`: a course id)."""
    return _rows(
        conn.execute(
            "SELECT d.user_id, d.course_id, c.code AS course_code, d.term, d.grade"
            " FROM completed_courses d JOIN courses c ON c.id = d.course_id"
            " WHERE d.user_id = ? AND d.course_id > ? ORDER BY d.course_id LIMIT ?",
            (user_id, after or 0, limit),
        )
    )


def record_completed(conn: sqlite3.Connection, rows: list[tuple[int, int, str, str]]) -> None:
    """(user_id, course_id, term, grade) rows, replacing what was recorded for the same pair."""
    conn.executemany(
        "INSERT INTO completed_courses (user_id, course_id, term, grade) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, course_id) DO UPDATE SET term = excluded.term,"
        " grade = excluded.grade",
        rows,
    )


def course_ids_by_code(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT code, id FROM courses"))


def existing_user_ids(conn: sqlite3.Connection, *, user_ids: set[int]) -> set[int]:
    found: set[int] = set()
    ids = sorted(user_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found |= {r[0] for r in conn.execute(f"SELECT id FROM users WHERE id IN ({marks})", chunk)}
    return found


def time_conflict(conn: sqlite3.Connection, *, section_id: int, user_id: int) -> dict | None:
    """A live section the user is enrolled in whose meetings overlap this section's (a shared day
    and overlapping times), or None."""
    return _one(
        conn.execute(
            "SELECT s.id, c.code AS course_code, s.section_number"
            " FROM enrollments e JOIN sections s ON s.id = e.section_id"
            " JOIN courses c ON c.id = s.course_id"
            " JOIN section_meetings theirs ON theirs.section_id = s.id"
            " JOIN section_meetings mine ON mine.section_id = ?"
            " WHERE e.user_id = ? AND e.status = 'enrolled' AND s.id <> ?"
            " AND s.deleted_at IS NULL AND s.term_id IS (SELECT term_id FROM sections WHERE id = ?)"
            " AND theirs.starts_at < mine.ends_at AND mine.starts_at < theirs.ends_at"
            " AND (instr(theirs.days, 'M') AND instr(mine.days, 'M')"
            "   OR instr(theirs.days, 'T') AND instr(mine.days, 'T')"
            "   OR instr(theirs.days, 'W') AND instr(mine.days, 'W')"
            "   OR instr(theirs.days, 'R') AND instr(mine.days, 'R')"
            "   OR instr(theirs.days, 'F') AND instr(mine.days, 'F')"
            "   OR instr(theirs.days, 'S') AND instr(mine.days, 'S')"
            "   OR instr(theirs.days, 'U') AND instr(mine.days, 'U'))"
            " ORDER BY c.code, s.section_number LIMIT 1",
            (section_id, user_id, section_id, section_id),
        )
    )


def credits_held(conn: sqlite3.Connection, *, user_id: int, term_id: int | None) -> int:
    """Credits of the live sections of the term (or of no term) the user is enrolled in."""
    return conn.execute(
        "SELECT COALESCE(SUM(c.credits), 0) FROM enrollments e"
        " JOIN sections s ON s.id = e.section_id JOIN courses c ON c.id = s.course_id"
        " WHERE e.user_id = ? AND e.status = 'enrolled' AND s.deleted_at IS NULL"
        " AND s.term_id IS ?",
        (user_id, term_id),
    ).fetchone()[0]


def credit_limit(conn: sqlite3.Connection, *, user_id: int) -> int | None:
    row = conn.execute("SELECT credit_limit FROM users WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else row[0]


def set_credit_limit(conn: sqlite3.Connection, *, user_id: int, credit_limit: int | None):
    conn.execute("UPDATE users SET credit_limit = ? WHERE id = ?", (credit_limit, user_id))


_PERMIT_COLUMNS = "id, section_id, user_id, waives, granted_by, granted_at, revoked_at"


def _permits(cur: sqlite3.Cursor) -> list[dict]:
    return [{**row, "waives": row["waives"].split(",")} for row in _rows(cur)]


def live_waivers(conn: sqlite3.Connection, *, section_id: int, user_id: int) -> set[str]:
    """The rules the user's live permits for this section waive."""
    waived: set[str] = set()
    for (waives,) in conn.execute(
        "SELECT waives FROM permits WHERE user_id = ? AND section_id = ? AND revoked_at IS NULL",
        (user_id, section_id),
    ):
        waived.update(waives.split(","))
    return waived


def grant_permit(
    conn: sqlite3.Connection, *, section_id: int, user_id: int, waives: list[str], granted_by: int
) -> int:
    cur = conn.execute(
        "INSERT INTO permits (section_id, user_id, waives, granted_by) VALUES (?, ?, ?, ?)",
        (section_id, user_id, ",".join(waives), granted_by),
    )
    return int(cur.lastrowid)  # type: ignore[arg-type]


def get_permit(conn: sqlite3.Connection, *, permit_id: int) -> dict | None:
    found = _permits(
        conn.execute(f"SELECT {_PERMIT_COLUMNS} FROM permits WHERE id = ?", (permit_id,))
    )
    return found[0] if found else None


def revoke_permit(conn: sqlite3.Connection, *, permit_id: int) -> None:
    conn.execute(
        f"UPDATE permits SET revoked_at = {NOW} WHERE id = ? AND revoked_at IS NULL", (permit_id,)
    )


def list_permits(
    conn: sqlite3.Connection,
    *,
    section_id: int | None = None,
    user_id: int | None = None,
    after: int | None,
    limit: int,
) -> list[dict]:
    where, params = ["id > ?"], [after or 0]
    if section_id is not None:
        where.append("section_id = ?")
        params.append(section_id)
    if user_id is not None:
        where.append("user_id = ?")
        params.append(user_id)
    sql = f"SELECT {_PERMIT_COLUMNS} FROM permits WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
    return _permits(conn.execute(sql, (*params, limit)))


def waitlist_in_order(conn: sqlite3.Connection, *, section_id: int) -> list[dict]:
    """The section's waitlisted rows (id, user_id) in arrival order."""
    return _rows(
        conn.execute(
            "SELECT id, user_id FROM enrollments WHERE section_id = ? AND status = 'waitlisted'"
            " ORDER BY id",
            (section_id,),
        )
    )


# terms and registration windows


def list_terms(conn: sqlite3.Connection, *, after: int | None, limit: int) -> list[dict]:
    return _rows(
        conn.execute("SELECT * FROM terms WHERE id > ? ORDER BY id LIMIT ?", (after or 0, limit))
    )


def get_term(conn: sqlite3.Connection, *, term_id: int) -> dict | None:
    return _one(conn.execute("SELECT * FROM terms WHERE id = ?", (term_id,)))


def term_code_taken(conn: sqlite3.Connection, *, code: str) -> bool:
    return conn.execute("SELECT 1 FROM terms WHERE code = ?", (code,)).fetchone() is not None


def create_term(
    conn: sqlite3.Connection,
    *,
    code: str,
    name: str,
    add_deadline: str | None,
    drop_deadline: str | None,
) -> int:
    cur = conn.execute(
        "INSERT INTO terms (code, name, add_deadline, drop_deadline) VALUES (?, ?, ?, ?)",
        (code, name, add_deadline, drop_deadline),
    )
    return int(cur.lastrowid)  # type: ignore[arg-type]


_TERM_UPDATABLE = {"name", "add_deadline", "drop_deadline"}


def update_term(conn: sqlite3.Connection, *, term_id: int, changes: dict) -> None:
    assert changes.keys() <= _TERM_UPDATABLE
    if changes:
        sets = ", ".join(f"{column} = ?" for column in changes)
        conn.execute(f"UPDATE terms SET {sets} WHERE id = ?", (*changes.values(), term_id))


_WINDOW_SELECT = """
    SELECT w.id, w.term_id, w.opens_at, w.closes_at, w.class_level,
           (SELECT json_group_array(ws.user_id) FROM window_students ws
            WHERE ws.window_id = w.id) AS user_ids
    FROM registration_windows w
"""


def _windows(cur: sqlite3.Cursor) -> list[dict]:
    return [{**row, "user_ids": sorted(json.loads(row["user_ids"]))} for row in _rows(cur)]


def list_windows(
    conn: sqlite3.Connection, *, term_id: int, after: int | None, limit: int
) -> list[dict]:
    return _windows(
        conn.execute(
            _WINDOW_SELECT + " WHERE w.term_id = ? AND w.id > ? ORDER BY w.id LIMIT ?",
            (term_id, after or 0, limit),
        )
    )


def get_window(conn: sqlite3.Connection, *, window_id: int) -> dict | None:
    found = _windows(conn.execute(_WINDOW_SELECT + " WHERE w.id = ?", (window_id,)))
    return found[0] if found else None


def create_window(
    conn: sqlite3.Connection,
    *,
    term_id: int,
    opens_at: str,
    closes_at: str,
    class_level: str | None,
    user_ids: list[int],
) -> int:
    cur = conn.execute(
        "INSERT INTO registration_windows (term_id, opens_at, closes_at, class_level)"
        " VALUES (?, ?, ?, ?)",
        (term_id, opens_at, closes_at, class_level),
    )
    window_id = int(cur.lastrowid)  # type: ignore[arg-type]
    conn.executemany(
        "INSERT INTO window_students (window_id, user_id) VALUES (?, ?)",
        [(window_id, u) for u in sorted(set(user_ids))],
    )
    return window_id


def delete_window(conn: sqlite3.Connection, *, window_id: int) -> None:
    conn.execute("DELETE FROM window_students WHERE window_id = ?", (window_id,))
    conn.execute("DELETE FROM registration_windows WHERE id = ?", (window_id,))


def windows_of_term_for(
    conn: sqlite3.Connection, *, term_id: int, user_id: int
) -> tuple[int, list[dict]]:
    """How many windows the term has, and those that include the user: their class level's, a
    list naming them, or one for everyone (neither)."""
    total = conn.execute(
        "SELECT COUNT(*) FROM registration_windows WHERE term_id = ?", (term_id,)
    ).fetchone()[0]
    if not total:
        return 0, []
    mine = _rows(
        conn.execute(
            "SELECT w.opens_at, w.closes_at FROM registration_windows w WHERE w.term_id = ? AND ("
            " (w.class_level IS NULL AND NOT EXISTS"
            "   (SELECT 1 FROM window_students ws WHERE ws.window_id = w.id))"
            " OR w.class_level = (SELECT class_level FROM users WHERE id = ?)"
            " OR EXISTS (SELECT 1 FROM window_students ws"
            "   WHERE ws.window_id = w.id AND ws.user_id = ?)) ORDER BY w.opens_at",
            (term_id, user_id, user_id),
        )
    )
    return total, mine


def set_class_level(conn: sqlite3.Connection, *, user_id: int, class_level: str | None) -> None:
    conn.execute("UPDATE users SET class_level = ? WHERE id = ?", (class_level, user_id))
