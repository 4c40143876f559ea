"""What every room's SQL (its `queries.py`) shares: the time SQLite stamps a row with, and rows
as dicts."""

import sqlite3
from typing import Any

# A row as a dict by column name: what SQLite stored (int, float, str, bytes or None).
Row = dict[str, Any]
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The id of the row the INSERT on `cur` made (sqlite3 types `lastrowid` as optional: it is
    None only before any INSERT)."""
    if cur.lastrowid is None:
        raise TypeError("no row was inserted")  # as int(None) would
    return cur.lastrowid


def rows(cur: sqlite3.Cursor) -> list[Row]:
    return [dict(r) for r in cur.fetchall()]


def one(cur: sqlite3.Cursor) -> Row | None:
    row = cur.fetchone()
    return dict(row) if row is not None else None
