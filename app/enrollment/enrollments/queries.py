"""The SQL of enrollments and waitlists. A waitlisted row's position is not stored: it is its
rank by arrival (id) among its section's waitlisted rows, so positions are always 1..n."""

import sqlite3
from collections.abc import Iterable

from app.enrollment.sql import NOW, Row, inserted_id, one, rows

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


def get_enrollment(conn: sqlite3.Connection, *, enrollment_id: int) -> Row | None:
    return one(
        conn.execute(
            f"SELECT {_ENROLLMENT_COLUMNS} FROM enrollments e WHERE e.id = ?", (enrollment_id,)
        )
    )


def get_live_enrollment(conn: sqlite3.Connection, *, section_id: int, user_id: int) -> Row | None:
    """The enrolled or waitlisted row of a student in a section, if any."""
    return one(
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
    return inserted_id(cur)


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


def count_waitlists_of(conn: sqlite3.Connection, *, user_id: int) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM enrollments WHERE user_id = ? AND status = 'waitlisted'",
        (user_id,),
    ).fetchone()
    return int(row[0])


def waitlist_in_order(conn: sqlite3.Connection, *, section_id: int) -> list[Row]:
    """The section's waitlisted rows (id, user_id) in arrival order."""
    return rows(
        conn.execute(
            "SELECT id, user_id FROM enrollments WHERE section_id = ? AND status = 'waitlisted'"
            " ORDER BY id",
            (section_id,),
        )
    )


def list_section_enrollments(
    conn: sqlite3.Connection,
    *,
    section_id: int,
    status: str | None,
    after: int | None = None,
    limit: int = -1,
) -> list[Row]:
    """A page of a section's enrollment rows in id order: those after id `after`, at most
    `limit` of them (-1: all)."""
    sql = f"SELECT {_ENROLLMENT_COLUMNS} FROM enrollments e WHERE e.section_id = ? AND e.id > ?"
    params: tuple[int | str, ...] = (section_id, after or 0)
    if status is not None:
        sql += " AND e.status = ?"
        params += (status,)
    return rows(conn.execute(sql + " ORDER BY e.id LIMIT ?", (*params, limit)))


def list_user_enrollments(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    status: str | None,
    after: int | None = None,
    limit: int = -1,
) -> list[Row]:
    """A page of a student's enrollment rows in live sections, in id order (see
    list_section_enrollments)."""
    sql = (
        f"SELECT {_ENROLLMENT_COLUMNS} FROM enrollments e"
        " JOIN sections s ON s.id = e.section_id AND s.deleted_at IS NULL"
        " WHERE e.user_id = ? AND e.id > ?"
    )
    params: tuple[int | str, ...] = (user_id, after or 0)
    if status is not None:
        sql += " AND e.status = ?"
        params += (status,)
    return rows(conn.execute(sql + " ORDER BY e.id LIMIT ?", (*params, limit)))


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
) -> list[Row]:
    """Waitlist entries of the given sections, by section then position."""
    if not section_ids:
        return []
    marks = ",".join("?" * len(section_ids))
    sql = f"SELECT * FROM ({_WAITLIST_SELECT} AND e.section_id IN ({marks}))"
    params = list(section_ids)
    if after:
        sql += " WHERE (section_id, id) > (SELECT section_id, id FROM enrollments WHERE id = ?)"
        params.append(after)
    return rows(conn.execute(sql + " ORDER BY section_id, id LIMIT ?", (*params, limit)))


def user_waitlist(
    conn: sqlite3.Connection, *, user_id: int, after: int | None = None, limit: int = -1
) -> list[Row]:
    """A student's waitlist entries with their positions in each section, by section."""
    sql = (
        f"SELECT * FROM ({_WAITLIST_SELECT} AND e.section_id IN (SELECT section_id"
        " FROM enrollments WHERE user_id = ? AND status = 'waitlisted')) WHERE user_id = ?"
    )
    params = [user_id, user_id]
    if after:
        sql += " AND section_id > (SELECT section_id FROM enrollments WHERE id = ?)"
        params.append(after)
    return rows(conn.execute(sql + " ORDER BY section_id LIMIT ?", (*params, limit)))
