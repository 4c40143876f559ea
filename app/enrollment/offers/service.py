"""Seat offers' rules (issue 27). A section in `offer` mode holds each freed seat for the first
eligible student on its waitlist (holding.offer, called by promote_from_waitlist) for the
section's `claim_seconds`. The student accepts (the seat is theirs) or declines (their waitlist
place ends); an offer not answered in time expires (`expire_due`, run by every instance's
sweeper, app/enrollment/offers/sweeper.py, with no request needed) and ends their place. Either
way the seat goes on to the next in line, as a drop's would. An open offer holds its seat: a
section's seats in use are its enrolled students plus its open offers."""

import sqlite3

from app.common.errors import Conflict, NotFound
from app.enrollment.audit.service import record, record_by_system
from app.enrollment.catalog.service import get_section_or_404
from app.enrollment.eligibility.service import Waivers, promotion_refusal
from app.enrollment.enrollments import queries as enrollment_queries
from app.enrollment.enrollments.service import promote_from_waitlist
from app.enrollment.notifications import service as notify
from app.enrollment.offers import queries
from app.enrollment.people.models import Identity
from app.enrollment.people.service import require_self_or_registrar, user_record
from app.enrollment.sql import Row
from app.enrollment.terms.models import now


def _open_offer(tx: sqlite3.Connection, user_id: int, offer_id: int) -> Row:
    """The user's offer, if it can still be answered: 404 if it is not theirs, 409 if it was
    answered, withdrawn or has run out (whether or not the sweeper has closed it yet)."""
    found = queries.get(tx, offer_id=offer_id)
    if found is None or found["user_id"] != user_id:
        raise NotFound(f"user {user_id} has no seat offer {offer_id}")
    if found["status"] != "open":
        raise Conflict(f"seat offer {offer_id} is {found['status']}", code="offer_closed")
    if found["expires_at"] <= now():
        raise Conflict(
            f"seat offer {offer_id} expired at {found['expires_at']}", code="offer_expired"
        )
    return found


def accept(tx: sqlite3.Connection, caller: Identity, user_id: int, offer_id: int) -> Row:
    """Take the held seat: the waitlist place becomes an enrollment. The eligibility rules of a
    promotion are asked again (a hold placed, a section taken that clashes, since the offer): a
    refusal leaves the offer open until its deadline, for the student to fix or decline."""
    require_self_or_registrar(caller, user_id)
    found = _open_offer(tx, user_id, offer_id)
    section = get_section_or_404(tx, found["section_id"])
    waivers = Waivers(tx, section_id=section["id"], user_id=user_id)
    refusal = promotion_refusal(tx, user_id=user_id, section=section, waivers=waivers)
    if refusal is not None:
        raise refusal
    queries.close(tx, offer_id=offer_id, status="accepted")
    enrollment_queries.mark_enrolled(tx, enrollment_ids=[found["enrollment_id"]])
    record(tx, caller, "offer.accept", section_id=section["id"], user_id=user_id, offer=offer_id)
    enrollment: Row = enrollment_queries.get_enrollment(tx, enrollment_id=found["enrollment_id"])  # type: ignore[assignment]  # just written: never None
    notify.enrolled(tx, enrollment=enrollment, section=section)
    return enrollment


def decline(tx: sqlite3.Connection, caller: Identity, user_id: int, offer_id: int) -> Row:
    """Turn the seat down: the student leaves the waitlist, and the seat is offered to the next."""
    require_self_or_registrar(caller, user_id)
    found = _open_offer(tx, user_id, offer_id)
    queries.close(tx, offer_id=offer_id, status="declined")
    enrollment_queries.mark_dropped(
        tx, enrollment_id=found["enrollment_id"], reason="offer_declined"
    )
    record(
        tx, caller, "offer.decline", section_id=found["section_id"], user_id=user_id,
        offer=offer_id,
    )  # fmt: skip
    promote_from_waitlist(tx, found["section_id"])
    return queries.get(tx, offer_id=offer_id)  # type: ignore[return-value]  # just read: never None


def expire_due(tx: sqlite3.Connection) -> int:
    """Close every open offer whose claim window has passed: the student's waitlist place ends
    (told by mail), and each seat is offered to the next in line. How many expired."""
    expired = queries.due(tx, moment=now())
    for found in expired:
        queries.close(tx, offer_id=found["id"], status="expired")
        enrollment_queries.mark_dropped(
            tx, enrollment_id=found["enrollment_id"], reason="offer_expired"
        )
        section = get_section_or_404(tx, found["section_id"])
        notify.offer_expired(tx, user_id=found["user_id"], section=section)
        record_by_system(
            tx,
            "offer.expire",
            course_id=section["course_id"],
            section_id=section["id"],
            user_id=found["user_id"],
            offer=found["id"],
            expired_at=found["expires_at"],
        )
    for section_id in dict.fromkeys(found["section_id"] for found in expired):
        promote_from_waitlist(tx, section_id)
    return len(expired)


def any_due(conn: sqlite3.Connection) -> bool:
    return queries.any_due(conn, moment=now())


def user_offers(
    conn: sqlite3.Connection,
    caller: Identity,
    user_id: int,
    status: str | None,
    *,
    after: int | None,
    limit: int,
) -> list[Row]:
    """A user's seat offers, newest first (theirs and the registrar's)."""
    user_record(conn, caller, user_id)
    return queries.list_for_user(conn, user_id=user_id, status=status, after=after, limit=limit)
