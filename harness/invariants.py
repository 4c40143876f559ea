"""SPEC §2's rules as checks on the enrollment database: used after every benchmark and fault
test. Each check is a query that must return no rows."""

import sqlite3
from pathlib import Path

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
}


def violations(db: Path) -> list[str]:
    """One line per broken rule, naming the offending rows (empty when all hold). Waitlist
    positions need no check: they are computed as ranks, 1..n by construction."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        found = []
        for name, sql in CHECKS.items():
            rows = conn.execute(sql).fetchall()
            if rows:
                found.append(f"{name}: {[tuple(r) for r in rows][:10]}")
        return found
    finally:
        conn.close()


def status_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT status, COUNT(*) FROM enrollments GROUP BY status"))
    finally:
        conn.close()
