"""SPEC §2's rules as checks on the enrollment database: used after every benchmark and fault
test. Each check is a query that must return no rows; and, given the enrollments a client was
answered 201 for, each must be in the database as it was answered."""

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from app.enrollment.eligibility.service import DEFAULT_CREDIT_LIMIT

CHECKS = {
    # A seat past the capacity only for a student whose permit for the section waives capacity.
    "sections over capacity": """
        SELECT s.id FROM sections s WHERE s.capacity < (SELECT COUNT(*) FROM enrollments e
            WHERE e.section_id = s.id AND e.status = 'enrolled' AND NOT EXISTS (
                SELECT 1 FROM permits p WHERE p.section_id = s.id AND p.user_id = e.user_id
                AND p.revoked_at IS NULL AND ',' || p.waives || ',' LIKE '%,capacity,%'))""",
    "waitlists over their capacity": """
        SELECT s.id FROM sections s WHERE s.waitlist_capacity < (SELECT COUNT(*)
            FROM enrollments e WHERE e.section_id = s.id AND e.status = 'waitlisted')""",
    "students holding two places in one section": """
        SELECT section_id, user_id FROM enrollments WHERE status IN ('enrolled', 'waitlisted')
            GROUP BY section_id, user_id HAVING COUNT(*) > 1""",
    "students on more than 3 waitlists": """
        SELECT user_id FROM enrollments WHERE status = 'waitlisted'
            GROUP BY user_id HAVING COUNT(*) > 3""",
    # Promotion skips a student the eligibility rules refuse (a hold, a time conflict, the
    # credit limit), audits it as waitlist.skip, and the student keeps their place: a waiting
    # student with a hold, or one ever skipped in that section, may wait beside a free seat.
    "free seats while students wait in an unfrozen section": """
        SELECT s.id FROM sections s WHERE s.frozen = 0 AND s.deleted_at IS NULL
            AND s.capacity > (SELECT COUNT(*) FROM enrollments e
                WHERE e.section_id = s.id AND e.status = 'enrolled')
            AND EXISTS (SELECT 1 FROM enrollments e
                WHERE e.section_id = s.id AND e.status = 'waitlisted'
                AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.action = 'waitlist.skip'
                    AND a.section_id = s.id AND a.user_id = e.user_id)
                AND NOT EXISTS (SELECT 1 FROM holds h
                    WHERE h.user_id = e.user_id AND h.lifted_at IS NULL))""",
    "live places in deleted sections": """
        SELECT e.id FROM enrollments e JOIN sections s ON s.id = e.section_id
            WHERE s.deleted_at IS NOT NULL AND e.status IN ('enrolled', 'waitlisted')""",
    # The credits a student holds in a term (live sections), against their limit (NULL: the
    # default). A seat is only given within the limit of the moment, and the registrar's change
    # of a limit keeps what is held (service.set_credit_limit), so what is held never exceeds the
    # largest limit the student ever had: the default they start with, each one audited as
    # user.credit_limit, the current one. A permit waiving the limit for a section of the term
    # (revoked or not: the place it gave stays) lets the student past it there.
    "students over their credit limit": f"""
        SELECT e.user_id, s.term_id, SUM(c.credits) FROM enrollments e
            JOIN sections s ON s.id = e.section_id JOIN courses c ON c.id = s.course_id
            WHERE e.status = 'enrolled' AND s.deleted_at IS NULL
            GROUP BY e.user_id, s.term_id
            HAVING SUM(c.credits) > MAX({DEFAULT_CREDIT_LIMIT},
                COALESCE((SELECT u.credit_limit FROM users u WHERE u.id = e.user_id), 0),
                COALESCE((SELECT MAX(COALESCE(json_extract(a.details, '$.credit_limit'),
                                              {DEFAULT_CREDIT_LIMIT}))
                    FROM audit_log a WHERE a.action = 'user.credit_limit'
                    AND a.user_id = e.user_id), 0))
            AND NOT EXISTS (SELECT 1 FROM permits p JOIN sections ps ON ps.id = p.section_id
                WHERE p.user_id = e.user_id AND ps.term_id IS s.term_id
                AND ',' || p.waives || ',' LIKE '%,credit_limit,%')""",
}


def violations(db: Path, acknowledged: Iterable[Mapping] = ()) -> list[str]:
    """One line per broken rule, naming the offending rows (empty when all hold). Waitlist
    positions need no check: they are computed as ranks, 1..n by construction. `acknowledged`:
    the bodies of 201 answers to enroll requests (id, section_id, user_id); each must be a row of
    the database, of that section and student (a row's status moves on, its row stays)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        found = []
        for name, sql in CHECKS.items():
            rows = conn.execute(sql).fetchall()
            if rows:
                found.append(f"{name}: {[tuple(r) for r in rows][:10]}")
        lost = [
            (body["id"], body["section_id"], body["user_id"])
            for body in acknowledged
            if conn.execute(
                "SELECT 1 FROM enrollments WHERE id = ? AND section_id = ? AND user_id = ?",
                (body["id"], body["section_id"], body["user_id"]),
            ).fetchone()
            is None
        ]
        if lost:
            found.append(
                f"enrollments answered 201 but not in the database as answered (id, section_id,"
                f" user_id): {len(lost)}, {lost[:10]}"
            )
        return found
    finally:
        conn.close()


def status_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT status, COUNT(*) FROM enrollments GROUP BY status"))
    finally:
        conn.close()


def table_rows(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table (sqlite_sequence included: ids are never reused), each table's
    rows in the order of all their columns, and the file's application_id and user_version: two
    databases holding the same data give equal answers."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        found: dict[str, list[tuple]] = {}
        for table in sorted(tables):
            width = len(conn.execute(f'SELECT * FROM "{table}" LIMIT 0').description)
            order = ", ".join(str(i) for i in range(1, width + 1))
            found[table] = conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall()
        for pragma in ("application_id", "user_version"):
            found[f"PRAGMA {pragma}"] = conn.execute(f"PRAGMA {pragma}").fetchall()
        return found
    finally:
        conn.close()
