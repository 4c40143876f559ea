"""SPEC §2's rules as checks on the enrollment database: used after every benchmark and fault
test. Each check is a query that must return no rows; and, given the enrollments a client was
answered 201 for, each must be in the database as it was answered."""

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from app.enrollment.eligibility.service import DEFAULT_CREDIT_LIMIT

# Seats in use in section s: its enrolled students and the seats its open offers hold.
_IN_USE = """(SELECT COUNT(*) FROM enrollments e
    WHERE e.section_id = s.id AND e.status = 'enrolled')
    + (SELECT COUNT(*) FROM seat_offers o WHERE o.section_id = s.id AND o.status = 'open')"""

# Waitlisted student e may wait beside a free seat: they hold an open offer for it, or
# promotion skipped them (a hold, a time conflict, the credit limit; audited as waitlist.skip,
# they keep their place), or they have a hold now.
_MAY_WAIT = """(EXISTS (SELECT 1 FROM seat_offers o
        WHERE o.enrollment_id = e.id AND o.status = 'open')
    OR EXISTS (SELECT 1 FROM audit_log a WHERE a.action = 'waitlist.skip'
        AND a.section_id = e.section_id AND a.user_id = e.user_id)
    OR EXISTS (SELECT 1 FROM holds h WHERE h.user_id = e.user_id AND h.lifted_at IS NULL))"""

CHECKS = {
    # A seat past the capacity only for a student whose permit for the section waives capacity;
    # a seat held by an open offer is in use.
    "sections over capacity": """
        SELECT s.id FROM sections s WHERE s.capacity < (SELECT COUNT(*) FROM enrollments e
            WHERE e.section_id = s.id AND e.status = 'enrolled' AND NOT EXISTS (
                SELECT 1 FROM permits p WHERE p.section_id = s.id AND p.user_id = e.user_id
                AND p.revoked_at IS NULL AND ',' || p.waives || ',' LIKE '%,capacity,%'))
            + (SELECT COUNT(*) FROM seat_offers o WHERE o.section_id = s.id
                AND o.status = 'open')""",
    "waitlists over their capacity": """
        SELECT s.id FROM sections s WHERE s.waitlist_capacity < (SELECT COUNT(*)
            FROM enrollments e WHERE e.section_id = s.id AND e.status = 'waitlisted')""",
    "students holding two places in one section": """
        SELECT section_id, user_id FROM enrollments WHERE status IN ('enrolled', 'waitlisted')
            GROUP BY section_id, user_id HAVING COUNT(*) > 1""",
    "students on more than 3 waitlists": """
        SELECT user_id FROM enrollments WHERE status = 'waitlisted'
            GROUP BY user_id HAVING COUNT(*) > 3""",
    "free seats while students wait in an unfrozen section": f"""
        SELECT s.id FROM sections s WHERE s.frozen = 0 AND s.deleted_at IS NULL
            AND s.capacity > {_IN_USE}
            AND EXISTS (SELECT 1 FROM enrollments e
                WHERE e.section_id = s.id AND e.status = 'waitlisted' AND NOT {_MAY_WAIT})""",
    # Seat offers (issue 27). An open offer holds a seat for a place still on the waitlist; an
    # answered or expired one has ended its place as it says.
    "open offers for a place not on the waitlist": """
        SELECT o.id FROM seat_offers o JOIN enrollments e ON e.id = o.enrollment_id
            WHERE o.status = 'open' AND (e.status <> 'waitlisted'
                OR e.section_id <> o.section_id OR e.user_id <> o.user_id)""",
    "closed offers whose place did not end as they say": """
        SELECT o.id FROM seat_offers o JOIN enrollments e ON e.id = o.enrollment_id
            WHERE (o.status = 'expired' AND e.drop_reason IS NOT 'offer_expired')
               OR (o.status = 'declined' AND e.drop_reason IS NOT 'offer_declined')
               OR (o.status = 'accepted' AND e.enrolled_at IS NULL)""",
    # Offers go in waitlist order: nobody waits ahead of an offer's holder unless they may wait
    # (they hold an offer too, were skipped, or have a hold).
    "offers made out of turn": f"""
        SELECT o.id FROM seat_offers o JOIN enrollments mine ON mine.id = o.enrollment_id
            WHERE o.status = 'open' AND EXISTS (SELECT 1 FROM enrollments e
                WHERE e.section_id = o.section_id AND e.status = 'waitlisted'
                AND e.id < mine.id AND NOT {_MAY_WAIT})""",
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
