"""Create the enrollment database: schema, then (optionally) the demo seed.

python -m app.enrollment.init_db PATH [--no-seed]
"""

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from app.common import idempotency
from app.common.db import connect, immediate, migrate

SHARE = Path(__file__).resolve().parents[2] / "share"
SCHEMA = SHARE / "enroll" / "schema.sql"
SEED = SHARE / "enroll" / "seed.sql"
PEOPLE = SHARE / "seed" / "people.json"


def sql_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (executescript would commit on its own)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    if pending.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement at the end of the script: {pending[:80]!r}")
    return statements


def rebuild(table: str) -> list[str]:
    """The statements that remake `table` as share/enroll/schema.sql now declares it, rows and
    ids kept: SQLite cannot change a CHECK constraint in place (its documented way: a new table,
    the rows copied, the old one dropped). The columns must be the same, in the same order; the
    schema file makes the indexes again afterwards. A table the old version did not have yet is
    made by the first statement and rebuilt empty."""
    head = f"CREATE TABLE IF NOT EXISTS {table} ("
    (ddl,) = [s[s.index(head) :] for s in sql_statements(SCHEMA.read_text()) if head in s]
    old = f"{table}_before_rebuild"
    return [
        ddl,
        f"ALTER TABLE {table} RENAME TO {old}",
        ddl,
        f"INSERT INTO {table} SELECT * FROM {old}",
        # AUTOINCREMENT's high-water mark carries over, so no id is ever given twice.
        f"UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = '{old}')"
        f" WHERE name = '{table}' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = '{old}')",
        f"DROP TABLE {old}",
    ]


# Each step takes a database from the version before it to its own; share/enroll/schema.sql is
# the latest whole, and its CREATE ... IF NOT EXISTS adds the new tables of each step.
_MIGRATIONS = {
    2: ["ALTER TABLE users ADD COLUMN credit_limit INTEGER CHECK (credit_limit BETWEEN 0 AND 40)"],
    3: [
        "ALTER TABLE users ADD COLUMN class_level TEXT CHECK (class_level IN"
        " ('freshman', 'sophomore', 'junior', 'senior', 'graduate'))",
        # The terms table is made by the schema file afterwards; SQLite does not check the
        # reference until then.
        "ALTER TABLE sections ADD COLUMN term_id INTEGER REFERENCES terms(id)",
    ],
    # idempotency_keys is new: share/common/idempotency.sql makes it (IF NOT EXISTS).
    4: [],
    # notifications (the outbox, issue 27) is new: the schema file makes it (IF NOT EXISTS).
    5: [],
    # Seat offers and swaps (issue 27): a section's waitlist mode; new drop reasons and
    # notification kinds (CHECK constraints: the tables are rebuilt); seat_offers is new.
    6: [
        "ALTER TABLE sections ADD COLUMN waitlist_mode TEXT NOT NULL DEFAULT 'auto'"
        " CHECK (waitlist_mode IN ('auto', 'offer'))",
        "ALTER TABLE sections ADD COLUMN claim_seconds INTEGER NOT NULL DEFAULT 86400"
        " CHECK (claim_seconds BETWEEN 1 AND 1209600)",
        *rebuild("enrollments"),
        *rebuild("notifications"),
    ],
}


def init_db(path: Path, *, seed: bool = True) -> None:
    """Create the schema in `path` and, if asked and the database is empty, load the demo seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        migrate(conn, _MIGRATIONS, first_table="users")
        conn.executescript(SCHEMA.read_text())
        idempotency.create_table(conn)
        if not seed or conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
            return
        people = json.loads(PEOPLE.read_text())
        # One transaction: the seed lands whole or not at all.
        with immediate(conn):
            conn.executemany(
                "INSERT INTO users (id, username, first_name, last_name, roles)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (p["id"], p["username"], p["first_name"], p["last_name"], ",".join(p["roles"]))
                    for p in people
                ],
            )
            for statement in sql_statements(SEED.read_text()):
                conn.execute(statement)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--no-seed", action="store_true", help="schema only")
    args = parser.parse_args(argv)
    init_db(args.path, seed=not args.no_seed)
    print(f"enrollment database ready: {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
