"""The SQL of terms, registration windows and class levels."""

import json
import sqlite3

from app.enrollment.sql import Row, inserted_id, one, rows


def list_terms(conn: sqlite3.Connection, *, after: int | None, limit: int) -> list[Row]:
    return rows(
        conn.execute("SELECT * FROM terms WHERE id > ? ORDER BY id LIMIT ?", (after or 0, limit))
    )


def get_term(conn: sqlite3.Connection, *, term_id: int) -> Row | None:
    return one(conn.execute("SELECT * FROM terms WHERE id = ?", (term_id,)))


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
    return inserted_id(cur)


_TERM_UPDATABLE = {"name", "add_deadline", "drop_deadline"}


def update_term(conn: sqlite3.Connection, *, term_id: int, changes: Row) -> None:
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


def _windows(cur: sqlite3.Cursor) -> list[Row]:
    return [{**row, "user_ids": sorted(json.loads(row["user_ids"]))} for row in rows(cur)]


def list_windows(
    conn: sqlite3.Connection, *, term_id: int, after: int | None, limit: int
) -> list[Row]:
    return _windows(
        conn.execute(
            _WINDOW_SELECT + " WHERE w.term_id = ? AND w.id > ? ORDER BY w.id LIMIT ?",
            (term_id, after or 0, limit),
        )
    )


def get_window(conn: sqlite3.Connection, *, window_id: int) -> Row | None:
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
    window_id = inserted_id(cur)
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
) -> tuple[int, list[Row]]:
    """How many windows the term has, and those that include the user: their class level's, a
    list naming them, or one for everyone (neither)."""
    total = conn.execute(
        "SELECT COUNT(*) FROM registration_windows WHERE term_id = ?", (term_id,)
    ).fetchone()[0]
    if not total:
        return 0, []
    mine = rows(
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
