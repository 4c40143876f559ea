"""The SQL of seat offers. An open offer holds a seat of its section (catalog's `offered`); the
waitlisted enrollment row it is made for keeps its place until the offer is answered."""

import sqlite3

from app.common.db import where_given
from app.enrollment.sql import NOW, Row, inserted_id, one, rows

_COLUMNS = """
    o.id, o.enrollment_id, o.section_id, o.user_id, o.status, o.offered_at, o.expires_at,
    o.closed_at, c.code AS course_code, s.section_number
"""
_FROM = """
    FROM seat_offers o JOIN sections s ON s.id = o.section_id JOIN courses c ON c.id = s.course_id
"""


def insert(
    conn: sqlite3.Connection, *, enrollment_id: int, section_id: int, user_id: int, expires_at: str
) -> int:
    return inserted_id(
        conn.execute(
            "INSERT INTO seat_offers (enrollment_id, section_id, user_id, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (enrollment_id, section_id, user_id, expires_at),
        )
    )


def get(conn: sqlite3.Connection, *, offer_id: int) -> Row | None:
    return one(conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE o.id = ?", (offer_id,)))


def open_for_enrollment(conn: sqlite3.Connection, *, enrollment_id: int) -> Row | None:
    return one(
        conn.execute(
            f"SELECT {_COLUMNS} {_FROM} WHERE o.enrollment_id = ? AND o.status = 'open'",
            (enrollment_id,),
        )
    )


def open_enrollment_ids(conn: sqlite3.Connection, *, section_id: int) -> set[int]:
    """The waitlisted rows of the section that hold an open offer."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT enrollment_id FROM seat_offers WHERE section_id = ? AND status = 'open'",
            (section_id,),
        )
    }


def close(conn: sqlite3.Connection, *, offer_id: int, status: str) -> None:
    conn.execute(
        f"UPDATE seat_offers SET status = ?, closed_at = {NOW} WHERE id = ? AND status = 'open'",
        (status, offer_id),
    )


def close_all_open(conn: sqlite3.Connection, *, section_id: int, status: str) -> None:
    conn.execute(
        f"UPDATE seat_offers SET status = ?, closed_at = {NOW}"
        " WHERE section_id = ? AND status = 'open'",
        (status, section_id),
    )


def due(conn: sqlite3.Connection, *, moment: str) -> list[Row]:
    """Open offers whose claim window has passed, oldest deadline first."""
    return rows(
        conn.execute(
            f"SELECT {_COLUMNS} {_FROM} WHERE o.status = 'open' AND o.expires_at <= ?"
            " ORDER BY o.expires_at, o.id",
            (moment,),
        )
    )


def any_due(conn: sqlite3.Connection, *, moment: str) -> bool:
    """Whether an open offer's window has passed (one probe of the seat_offers_due index)."""
    row = conn.execute(
        "SELECT 1 FROM seat_offers WHERE status = 'open' AND expires_at <= ? LIMIT 1", (moment,)
    ).fetchone()
    return row is not None


def list_for_user(
    conn: sqlite3.Connection, *, user_id: int, status: str | None, after: int | None, limit: int
) -> list[Row]:
    """A user's offers, newest first, a page at a time (`after`: the last id of the page before)."""
    where, params = where_given({"o.status = ?": status, "o.id < ?": after})
    return rows(
        conn.execute(
            f"SELECT {_COLUMNS} {_FROM} WHERE o.user_id = ? AND {where} ORDER BY o.id DESC LIMIT ?",
            (user_id, *params, limit),
        )
    )
