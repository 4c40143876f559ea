"""Holding a freed seat for the head of the waitlist, and letting go of a hold whose place is
gone: the part of seat offers that promotion (app/enrollment/enrollments/service.py) calls, in
the transaction that freed the seat or removed the place."""

import sqlite3
from datetime import UTC, datetime, timedelta

from app.enrollment.notifications import service as notify
from app.enrollment.offers import queries
from app.enrollment.sql import Row
from app.enrollment.terms.models import utc_text


def offer(tx: sqlite3.Connection, *, section: Row, enrollment: Row) -> Row:
    """Hold a seat of `section` for the waitlisted `enrollment` (id, user_id) for the section's
    claim window, and tell the student; the offer."""
    deadline = utc_text(datetime.now(UTC) + timedelta(seconds=section["claim_seconds"]))
    offer_id = queries.insert(
        tx,
        enrollment_id=enrollment["id"],
        section_id=section["id"],
        user_id=enrollment["user_id"],
        expires_at=deadline,
    )
    notify.offered(tx, user_id=enrollment["user_id"], section=section, deadline=deadline)
    return queries.get(tx, offer_id=offer_id)  # type: ignore[return-value]  # just written: never None


def held_places(tx: sqlite3.Connection, *, section_id: int) -> set[int]:
    """The section's waitlisted rows that already hold a seat by an open offer."""
    return queries.open_enrollment_ids(tx, section_id=section_id)


def withdraw(tx: sqlite3.Connection, *, enrollment_id: int) -> bool:
    """The place `enrollment_id` held is gone (the student left the waitlist or was removed from
    it, or the section was deleted): its open offer, if any, is withdrawn and its seat is free
    again. Whether there was one; the caller then fills the seat as a drop would."""
    found = queries.open_for_enrollment(tx, enrollment_id=enrollment_id)
    if found is None:
        return False
    queries.close(tx, offer_id=found["id"], status="withdrawn")
    return True


def withdraw_all(tx: sqlite3.Connection, *, section_id: int) -> None:
    """Every open offer of a section being deleted."""
    queries.close_all_open(tx, section_id=section_id, status="withdrawn")
