"""What every room's SQL (its `queries.py`) shares: the time SQLite stamps a row with, and rows
as dicts."""

import sqlite3

NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


def rows(cur: sqlite3.Cursor) -> list[dict]:
    return [dict(r) for r in cur.fetchall()]


def one(cur: sqlite3.Cursor) -> dict | None:
    row = cur.fetchone()
    return dict(row) if row is not None else None
