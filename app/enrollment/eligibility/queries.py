"""The SQL of eligibility: holds, permits, prerequisites, completed courses, meeting-time
conflicts and credits."""

import sqlite3

from app.enrollment.catalog.queries import COURSE_SELECT
from app.enrollment.sql import NOW, Row, inserted_id, one, rows


def active_hold(conn: sqlite3.Connection, *, user_id: int) -> Row | None:
    """The oldest hold on the user not lifted yet, or None."""
    return one(
        conn.execute(
            "SELECT * FROM holds WHERE user_id = ? AND lifted_at IS NULL ORDER BY id LIMIT 1",
            (user_id,),
        )
    )


def list_holds(
    conn: sqlite3.Connection, *, user_id: int, after: int | None, limit: int
) -> list[Row]:
    return rows(
        conn.execute(
            "SELECT * FROM holds WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?",
            (user_id, after or 0, limit),
        )
    )


def all_holds(
    conn: sqlite3.Connection, *, lifted: bool, after: int | None, limit: int
) -> list[Row]:
    """Every user's holds, open ones (`lifted` False) or lifted ones, newest first; `after` (the
    last id of the page before) pages backwards in time."""
    where = "lifted_at IS NOT NULL" if lifted else "lifted_at IS NULL"
    return rows(
        conn.execute(
            f"SELECT * FROM holds WHERE {where} AND id < ? ORDER BY id DESC LIMIT ?",
            (after or 2**63 - 1, limit),
        )
    )


def get_hold(conn: sqlite3.Connection, *, hold_id: int) -> Row | None:
    return one(conn.execute("SELECT * FROM holds WHERE id = ?", (hold_id,)))


def place_hold(conn: sqlite3.Connection, *, user_id: int, reason: str, placed_by: int) -> int:
    cur = conn.execute(
        "INSERT INTO holds (user_id, reason, placed_by) VALUES (?, ?, ?)",
        (user_id, reason, placed_by),
    )
    return inserted_id(cur)


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


def prerequisites(conn: sqlite3.Connection, *, course_id: int) -> list[Row]:
    return rows(
        conn.execute(
            COURSE_SELECT + " WHERE c.id IN (SELECT prerequisite_id FROM course_prerequisites"
            " WHERE course_id = ?) ORDER BY c.code",
            (course_id,),
        )
    )


def set_prerequisites(
    conn: sqlite3.Connection, *, course_id: int, prerequisite_ids: list[int]
) -> None:
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
) -> list[Row]:
    """A user's completed courses in course id order (`after`: a course id)."""
    return rows(
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


def time_conflict(conn: sqlite3.Connection, *, section_id: int, user_id: int) -> Row | None:
    """A live section the user is enrolled in whose meetings overlap this section's (a shared day
    and overlapping times), or None."""
    return one(
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
    held: int = conn.execute(
        "SELECT COALESCE(SUM(c.credits), 0) FROM enrollments e"
        " JOIN sections s ON s.id = e.section_id JOIN courses c ON c.id = s.course_id"
        " WHERE e.user_id = ? AND e.status = 'enrolled' AND s.deleted_at IS NULL"
        " AND s.term_id IS ?",
        (user_id, term_id),
    ).fetchone()[0]
    return held


def credit_limit(conn: sqlite3.Connection, *, user_id: int) -> int | None:
    row = conn.execute("SELECT credit_limit FROM users WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else row[0]


def set_credit_limit(conn: sqlite3.Connection, *, user_id: int, credit_limit: int | None) -> None:
    conn.execute("UPDATE users SET credit_limit = ? WHERE id = ?", (credit_limit, user_id))


_PERMIT_COLUMNS = "id, section_id, user_id, waives, granted_by, granted_at, revoked_at"


def _permits(cur: sqlite3.Cursor) -> list[Row]:
    return [{**row, "waives": row["waives"].split(",")} for row in rows(cur)]


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
    return inserted_id(cur)


def get_permit(conn: sqlite3.Connection, *, permit_id: int) -> Row | None:
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
) -> list[Row]:
    where, params = ["id > ?"], [after or 0]
    if section_id is not None:
        where.append("section_id = ?")
        params.append(section_id)
    if user_id is not None:
        where.append("user_id = ?")
        params.append(user_id)
    sql = f"SELECT {_PERMIT_COLUMNS} FROM permits WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
    return _permits(conn.execute(sql, (*params, limit)))
