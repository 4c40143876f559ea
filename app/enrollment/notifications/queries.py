"""The SQL of the notifications outbox: what a change writes, what a person reads, what the
notifier takes and marks."""

import sqlite3

from app.common.db import where_given
from app.enrollment.sql import NOW, Row, inserted_id, rows

_COLUMNS = """
    id, user_id, kind, section_id, subject, body, created_at,
    read_at IS NOT NULL AS read, delivered_at IS NOT NULL AS delivered
"""


def insert(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    kind: str,
    section_id: int | None,
    subject: str,
    body: str,
) -> int:
    """Add one event to the outbox. Run inside the transaction of the change it tells of."""
    return inserted_id(
        conn.execute(
            "INSERT INTO notifications (user_id, kind, section_id, subject, body)"
            " VALUES (?, ?, ?, ?, ?)",
            (user_id, kind, section_id, subject, body),
        )
    )


def insert_for_live_members(
    conn: sqlite3.Connection, *, section_id: int, kind: str, subject: str, body: str
) -> int:
    """One event for each student enrolled in or waiting for the section; how many."""
    cur = conn.execute(
        "INSERT INTO notifications (user_id, kind, section_id, subject, body)"
        " SELECT user_id, ?, section_id, ?, ? FROM enrollments"
        " WHERE section_id = ? AND status IN ('enrolled', 'waitlisted') ORDER BY id",
        (kind, subject, body, section_id),
    )
    return cur.rowcount


def list_for_user(
    conn: sqlite3.Connection, *, user_id: int, unread: bool | None, after: int | None, limit: int
) -> list[Row]:
    """Newest first; `after` (the last id of the page before) pages backwards in time."""
    read = None if unread is None else ("read_at IS NULL" if unread else "read_at IS NOT NULL")
    where, params = where_given({"user_id = ?": user_id, "id < ?": after})
    if read is not None:
        where += f" AND {read}"
    return rows(
        conn.execute(
            f"SELECT {_COLUMNS} FROM notifications WHERE {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
    )


def get(conn: sqlite3.Connection, *, notification_id: int) -> Row | None:
    found = rows(
        conn.execute(f"SELECT {_COLUMNS} FROM notifications WHERE id = ?", (notification_id,))
    )
    return found[0] if found else None


def set_read(conn: sqlite3.Connection, *, notification_id: int, read: bool) -> None:
    conn.execute(
        f"UPDATE notifications SET read_at = CASE WHEN ? THEN coalesce(read_at, {NOW}) END"
        " WHERE id = ?",
        (read, notification_id),
    )


def mark_read_up_to(conn: sqlite3.Connection, *, user_id: int, up_to: int) -> int:
    """Mark the user's unread notifications with an id up to `up_to` read; how many."""
    cur = conn.execute(
        f"UPDATE notifications SET read_at = {NOW}"
        " WHERE user_id = ? AND id <= ? AND read_at IS NULL",
        (user_id, up_to),
    )
    return cur.rowcount


def count_unread(conn: sqlite3.Connection, *, user_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL", (user_id,)
    ).fetchone()
    return int(row[0])


# delivery (the notifier)


def undelivered(conn: sqlite3.Connection, *, after: int | None, limit: int) -> list[Row]:
    """Events not delivered yet, oldest first."""
    return rows(
        conn.execute(
            "SELECT id, user_id, kind, section_id, subject, created_at, attempts, next_attempt,"
            " last_error FROM notifications WHERE delivered_at IS NULL AND id > ?"
            " ORDER BY id LIMIT ?",
            (after or 0, limit),
        )
    )


def due(conn: sqlite3.Connection, *, now: float, limit: int) -> list[Row]:
    """Undelivered events whose next attempt is due, oldest first: the notifier's next batch."""
    return rows(
        conn.execute(
            "SELECT id, user_id, kind, section_id, subject, body, created_at, attempts"
            " FROM notifications WHERE delivered_at IS NULL AND next_attempt <= ?"
            " ORDER BY id LIMIT ?",
            (now, limit),
        )
    )


def mark_delivered(conn: sqlite3.Connection, *, notification_id: int) -> None:
    conn.execute(
        f"UPDATE notifications SET delivered_at = {NOW}, last_error = NULL"
        " WHERE id = ? AND delivered_at IS NULL",
        (notification_id,),
    )


def mark_failed(
    conn: sqlite3.Connection, *, notification_id: int, next_attempt: float, error: str
) -> None:
    conn.execute(
        "UPDATE notifications SET attempts = attempts + 1, next_attempt = ?, last_error = ?"
        " WHERE id = ? AND delivered_at IS NULL",
        (next_attempt, error[:500], notification_id),
    )


def delivery_counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(undelivered, of those the ones that failed at least once)."""
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE attempts > 0) FROM notifications"
        " WHERE delivered_at IS NULL"
    ).fetchone()
    return int(row[0]), int(row[1])
