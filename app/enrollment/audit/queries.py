"""The SQL of the audit trail."""

import sqlite3

from app.common.db import where_given
from app.enrollment.sql import Row, one, rows


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


def last_skip(conn: sqlite3.Connection, *, user_id: int, section_id: int, since: str) -> Row | None:
    """The latest `waitlist.skip` of the user in the section at or after `since`."""
    return one(
        conn.execute(
            "SELECT at, details FROM audit_log WHERE section_id = ? AND user_id = ?"
            " AND action = 'waitlist.skip' AND at >= ? ORDER BY id DESC LIMIT 1",
            (section_id, user_id, since),
        )
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
) -> list[Row]:
    """Newest first; `after` (the last id of the page before) pages backwards in time."""
    where, params = where_given(
        {
            "actor_id = ?": actor_id,
            "section_id = ?": section_id,
            "user_id = ?": user_id,
            "action = ?": action,
            "id < ?": after,
        }
    )
    return rows(
        conn.execute(
            f"SELECT * FROM audit_log WHERE {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
    )
