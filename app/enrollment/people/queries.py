"""The SQL of the people room: the users table. A user's roles are stored comma-separated, in
order, and handed out as a list."""

import sqlite3
from collections.abc import Iterable

from app.enrollment.sql import Row, rows


def _users(cur: sqlite3.Cursor) -> list[Row]:
    """Rows of the users table, each with its roles as a list."""
    return [{**row, "roles": row["roles"].split(",")} for row in rows(cur)]


def _roles(roles: Iterable[str]) -> str:
    return ",".join(sorted(roles))


def list_users(conn: sqlite3.Connection, *, after: int | None = None, limit: int = -1) -> list[Row]:
    """A page of the users in id order: those after id `after`, at most `limit` (-1: all)."""
    return _users(
        conn.execute("SELECT * FROM users WHERE id > ? ORDER BY id LIMIT ?", (after or 0, limit))
    )


def get_user(conn: sqlite3.Connection, *, user_id: int) -> Row | None:
    found = _users(conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)))
    return found[0] if found else None


def upsert_account(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    username: str,
    first_name: str,
    last_name: str,
    roles: Iterable[str],
) -> None:
    conn.execute(
        "INSERT INTO users (id, username, first_name, last_name, roles) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET username = excluded.username,"
        " first_name = excluded.first_name, last_name = excluded.last_name,"
        " roles = excluded.roles",
        (user_id, username, first_name, last_name, _roles(roles)),
    )


def upsert_user(
    conn: sqlite3.Connection, *, user_id: int, username: str, roles: Iterable[str]
) -> None:
    conn.execute(
        "INSERT INTO users (id, username, roles) VALUES (?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET username = excluded.username, roles = excluded.roles",
        (user_id, username, _roles(roles)),
    )


def existing_user_ids(conn: sqlite3.Connection, *, user_ids: set[int]) -> set[int]:
    found: set[int] = set()
    ids = sorted(user_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found |= {r[0] for r in conn.execute(f"SELECT id FROM users WHERE id IN ({marks})", chunk)}
    return found


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
