"""The audit rule: every action of a caller holding the registrar or instructor role is logged,
in the transaction that performs it; and what the service does by itself, unasked."""

import json
import sqlite3
from typing import Any

from app.common.identity import INSTRUCTOR, REGISTRAR
from app.enrollment.audit import queries
from app.enrollment.people.models import Identity
from app.enrollment.sql import Row

# The actor of what the service does by itself (a waitlist promotion that skips a student).
SYSTEM = 0


def record(
    conn: sqlite3.Connection,
    caller: Identity,
    action: str,
    *,
    course_id: int | None = None,
    section_id: int | None = None,
    user_id: int | None = None,
    **details: object,
) -> None:
    """Audit rule: every action of a caller holding the registrar or instructor role is logged
    (who, what, when) inside the transaction that performs it, whatever its target, themself
    included. A student acting on their own records (the only ones they can act on) is not."""
    if not caller.is_staff:
        return
    queries.insert_audit(
        conn,
        actor_id=caller.user_id,
        actor_role=REGISTRAR if caller.is_registrar else INSTRUCTOR,
        action=action,
        course_id=course_id,
        section_id=section_id,
        user_id=user_id,
        details=json.dumps(details, sort_keys=True),
    )


def record_by_system(
    conn: sqlite3.Connection,
    action: str,
    *,
    course_id: int | None = None,
    section_id: int | None = None,
    user_id: int | None = None,
    **details: object,
) -> None:
    """What the service did by itself, unasked (a promotion's skip), in the transaction that
    did it."""
    queries.insert_audit(
        conn,
        actor_id=SYSTEM,
        actor_role="system",
        action=action,
        course_id=course_id,
        section_id=section_id,
        user_id=user_id,
        details=json.dumps(details, sort_keys=True),
    )


def passed_over(
    conn: sqlite3.Connection, *, user_id: int, section_id: int, since: str
) -> Row | None:
    """The latest time a promotion skipped the student in the section's waitlist since `since`
    (when they joined it): when, the rule that refused them and its sentence; or None."""
    skip = queries.last_skip(conn, user_id=user_id, section_id=section_id, since=since)
    if skip is None:
        return None
    details = json.loads(skip["details"])
    return {"at": skip["at"], "rule": details["rule"], "detail": details["detail"]}


def audit_trail(conn: sqlite3.Connection, /, **filters: Any) -> list[Row]:
    """The registrar's view of the audit log, newest first (`queries.list_audit`'s filters)."""
    rows = queries.list_audit(conn, **filters)
    return [{**r, "details": json.loads(r["details"])} for r in rows]
