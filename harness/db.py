"""Whole-database copies for tests and benchmarks."""

import sqlite3
from pathlib import Path


def copy_database(source: Path, target: Path) -> None:
    """Make `target` hold what `source` holds, WAL included, through SQLite's backup API: safe
    while servers keep connections to `target` open (they see the new content at their next
    transaction)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def restore_rows(pristine: Path, live: Path) -> None:
    """Make every table of `live` hold exactly the rows of `pristine` (same schema), in one
    write transaction of plain SQL: safe while servers use `live`, and on a LiteFS mount too
    (LiteFS replicates it as any other transaction, which a page copy into the mount is not
    guaranteed to be)."""
    conn = sqlite3.connect(live, isolation_level=None, timeout=30)
    try:
        conn.execute("ATTACH DATABASE ? AS pristine", (str(pristine),))
        tables = _tables(conn, "pristine")
        has_sequence = conn.execute(
            "SELECT 1 FROM pristine.sqlite_master WHERE name = 'sqlite_sequence'"
        ).fetchone()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("PRAGMA defer_foreign_keys = ON")  # rows go in in any order
            for table in tables:
                conn.execute(f'DELETE FROM main."{table}"')
            for table in tables:
                conn.execute(f'INSERT INTO main."{table}" SELECT * FROM pristine."{table}"')
            if has_sequence:  # AUTOINCREMENT counters: ids as the pristine database would give
                conn.execute("DELETE FROM main.sqlite_sequence")
                conn.execute(
                    "INSERT INTO main.sqlite_sequence SELECT * FROM pristine.sqlite_sequence"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def empty_tables(path: Path) -> None:
    """Delete every row of every table of `path`, in one write transaction."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for table in _tables(conn, "main"):
            conn.execute(f'DELETE FROM "{table}"')
        conn.execute("COMMIT")
    finally:
        conn.close()


def _tables(conn: sqlite3.Connection, schema: str) -> list[str]:
    """The tables of an attached database (`main`, say), SQLite's own left out."""
    rows = conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    return [row[0] for row in rows]
